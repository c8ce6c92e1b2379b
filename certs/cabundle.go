package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	admissionregistrationv1client "k8s.io/client-go/kubernetes/typed/admissionregistration/v1"
)

// webhookConfigurationClient is the part of the typed client of either webhook configuration
// kind (C is *MutatingWebhookConfiguration or *ValidatingWebhookConfiguration) the injector
// uses: get and patch of one configuration by name; no list or watch.
type webhookConfigurationClient[C any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (C, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (C, error)
}

// webhookCA is one webhook of a configuration: its name and its current caBundle.
type webhookCA struct {
	name     string
	caBundle []byte
}

// caBundleInjector writes the caBundle into every webhook of one webhook configuration. It is
// the same code for both kinds; webhooks is the one thing that differs, reading the
// configuration's webhooks.
type caBundleInjector[C any] struct {
	kind     string
	name     string
	client   webhookConfigurationClient[C]
	webhooks func(C) []webhookCA
	log      logr.Logger
}

// injector is a caBundleInjector of either kind.
type injector interface {
	inject(ctx context.Context, bundle []byte) error
}

// caBundleInjectors returns an injector for each configuration named (an empty name is none).
func caBundleInjectors(api admissionregistrationv1client.AdmissionregistrationV1Interface, mutating, validating string, log logr.Logger) []injector {
	var out []injector
	if mutating != "" {
		out = append(out, &caBundleInjector[*admissionregistrationv1.MutatingWebhookConfiguration]{
			kind: "MutatingWebhookConfiguration", name: mutating, client: api.MutatingWebhookConfigurations(), log: log,
			webhooks: func(c *admissionregistrationv1.MutatingWebhookConfiguration) []webhookCA {
				return webhookCAs(c.Webhooks, func(w admissionregistrationv1.MutatingWebhook) (string, []byte) {
					return w.Name, w.ClientConfig.CABundle
				})
			},
		})
	}
	if validating != "" {
		out = append(out, &caBundleInjector[*admissionregistrationv1.ValidatingWebhookConfiguration]{
			kind: "ValidatingWebhookConfiguration", name: validating, client: api.ValidatingWebhookConfigurations(), log: log,
			webhooks: func(c *admissionregistrationv1.ValidatingWebhookConfiguration) []webhookCA {
				return webhookCAs(c.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) (string, []byte) {
					return w.Name, w.ClientConfig.CABundle
				})
			},
		})
	}
	return out
}

func webhookCAs[W any](webhooks []W, field func(W) (name string, caBundle []byte)) []webhookCA {
	out := make([]webhookCA, len(webhooks))
	for i, w := range webhooks {
		out[i].name, out[i].caBundle = field(w)
	}
	return out
}

// jsonPatchOp is one RFC 6902 operation. The patch sets only the caBundles that differ, each
// guarded by a test of the webhook's name at that index: fields this client does not know
// survive (an Update of the typed object would drop them), and a configuration changed in
// between fails the test instead of getting a caBundle at the wrong webhook.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// inject sets every webhook's caBundle to bundle, reading the configuration again and retrying
// a few times when it changed in between.
func (i *caBundleInjector[C]) inject(ctx context.Context, bundle []byte) error {
	for attempt := 1; ; attempt++ {
		c, err := i.client.Get(ctx, i.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get %s %q to write its caBundle: %w", i.kind, i.name, err)
		}
		var ops []jsonPatchOp
		for n, w := range i.webhooks(c) {
			if bytes.Equal(w.caBundle, bundle) {
				continue
			}
			ops = append(ops,
				jsonPatchOp{Op: "test", Path: "/webhooks/" + strconv.Itoa(n) + "/name", Value: w.name},
				jsonPatchOp{Op: "add", Path: "/webhooks/" + strconv.Itoa(n) + "/clientConfig/caBundle", Value: bundle}, // []byte: base64, as the API wants
			)
		}
		if len(ops) == 0 {
			return nil
		}
		p, err := json.Marshal(ops)
		if err != nil {
			return fmt.Errorf("encode caBundle patch of %s %q: %w", i.kind, i.name, err)
		}
		_, err = i.client.Patch(ctx, i.name, types.JSONPatchType, p, metav1.PatchOptions{})
		if err == nil {
			i.log.Info("caBundle written", "kind", i.kind, "webhookConfiguration", i.name, "webhooks", len(ops)/2)
			return nil
		}
		// A failed test operation comes back as 422 Unprocessable Entity (Invalid).
		if (apierrors.IsConflict(err) || apierrors.IsInvalid(err)) && attempt < maxAttempts {
			i.log.V(1).Info("webhook configuration changed concurrently; reading it again", "kind", i.kind, "webhookConfiguration", i.name)
			continue
		}
		return fmt.Errorf("patch caBundle of %s %q: %w", i.kind, i.name, err)
	}
}
