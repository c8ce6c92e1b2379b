package certs

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Keys of the Secret that holds the self-managed certificate. tls.crt and tls.key are the
// serving pair (as in a kubernetes.io/tls Secret), ca.crt and ca.key the CA that signed it, and
// ca-previous.crt the CAs replaced by a CA rotation that are still valid: they stay in the
// caBundle so that replicas still serving a certificate from the old CA keep being trusted.
const (
	SecretKeyCACert      = "ca.crt"
	SecretKeyCAKey       = "ca.key"
	SecretKeyCert        = corev1.TLSCertKey
	SecretKeyKey         = corev1.TLSPrivateKeyKey
	SecretKeyPreviousCAs = "ca-previous.crt"
)

// secretStore reads and writes the one Secret every replica shares. It needs get and update on
// that Secret, create only when it may be absent; no list or watch.
type secretStore struct {
	secrets   corev1client.SecretInterface
	namespace string
	name      string
	log       logr.Logger
}

func (s secretStore) ref() string { return s.namespace + "/" + s.name }

// update reads the Secret and, when decide gives a reason to change it, writes what decide
// returned. A write that loses against another replica (Conflict, AlreadyExists) reads the
// Secret again and decides again, so the replicas end up using the first writer's CA and
// certificate. It returns what the Secret holds afterwards.
func (s secretStore) update(ctx context.Context, decide func(cur material) (next material, reason string, err error)) (material, error) {
	ref := s.ref()
	for attempt := 1; ; attempt++ {
		sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sec, err = nil, nil
		}
		if err != nil {
			return material{}, fmt.Errorf("get Secret %s: %w", ref, err)
		}
		cur := materialFrom(sec)
		next, reason, err := decide(cur)
		if err != nil {
			return material{}, fmt.Errorf("renew the certificate in Secret %s: %w", ref, err)
		}
		if reason == reasonNothingToChange {
			return cur, nil
		}
		if sec == nil {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name},
				Type:       corev1.SecretTypeOpaque,
				Data:       next.into(nil),
			}
			_, err = s.secrets.Create(ctx, sec, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < maxAttempts {
				s.log.V(1).Info("secret created concurrently; reading it again", "secret", ref)
				continue
			}
			if err != nil {
				return material{}, fmt.Errorf("create Secret %s, which does not exist: %w", ref, err)
			}
		} else {
			sec = sec.DeepCopy()
			sec.Data = next.into(sec.Data)
			_, err = s.secrets.Update(ctx, sec, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) && attempt < maxAttempts {
				s.log.V(1).Info("secret changed concurrently; reading it again", "secret", ref)
				continue
			}
			if err != nil {
				return material{}, fmt.Errorf("update Secret %s (%s): %w", ref, reason, err)
			}
		}
		s.log.Info("serving certificate issued", "secret", ref, "reason", reason,
			"notAfter", notAfter(next.cert), "caNotAfter", notAfter(next.caCert))
		return next, nil
	}
}

func materialFrom(s *corev1.Secret) material {
	if s == nil {
		return material{}
	}
	return material{
		caCert:      s.Data[SecretKeyCACert],
		caKey:       s.Data[SecretKeyCAKey],
		cert:        s.Data[SecretKeyCert],
		key:         s.Data[SecretKeyKey],
		previousCAs: s.Data[SecretKeyPreviousCAs],
	}
}

// into writes mat into data, keeping keys that are not ours.
func (mat material) into(data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(data)+5)
	for k, v := range data {
		out[k] = v
	}
	out[SecretKeyCACert] = mat.caCert
	out[SecretKeyCAKey] = mat.caKey
	out[SecretKeyCert] = mat.cert
	out[SecretKeyKey] = mat.key
	if len(mat.previousCAs) > 0 {
		out[SecretKeyPreviousCAs] = mat.previousCAs
	} else {
		delete(out, SecretKeyPreviousCAs)
	}
	return out
}
