package harness

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// RoleAnnotation is the ServiceAccount annotation naming the role, with the default prefix.
var RoleAnnotation = irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)

// PollEvery is how often Poll asks.
const PollEvery = 50 * time.Millisecond

// SimplePod is a pod with one container running as sa.
func SimplePod(name, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
		},
	}
}

// ServiceAccount is a ServiceAccount named name whose role annotation names role ("" for
// none).
func ServiceAccount(name, role string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if role != "" {
		sa.Annotations = map[string]string{RoleAnnotation: role}
	}
	return sa
}

// HasEnv reports whether c has an environment variable called name.
func HasEnv(c corev1.Container, name string) bool {
	_, ok := EnvValue(c, name)
	return ok
}

// EnvValue is the value of c's environment variable name.
func EnvValue(c corev1.Container, name string) (string, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return "", false
	}
	return c.Env[i].Value, true
}

// HasTokenVolume reports whether p has the webhook's projected token volume.
func HasTokenVolume(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == irsa.VolumeName })
}

// Poll calls cond every PollEvery until it is true or timeout passes; the error holds cond's
// last explanation.
func Poll(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %v: %s", timeout, why)
		case <-time.After(PollEvery):
		}
	}
}

// Certificates parses every certificate of a PEM bundle.
func Certificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of the bundle: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

// Certificate parses the first certificate of a PEM bundle.
func Certificate(data []byte) (*x509.Certificate, error) {
	certs, err := Certificates(data)
	if err == nil && len(certs) == 0 {
		err = errors.New("no PEM certificate")
	}
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}
