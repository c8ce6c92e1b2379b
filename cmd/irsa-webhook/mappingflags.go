package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
	"github.com/irsa-webhook/irsa-webhook/webhook/mappingcache"
	"github.com/irsa-webhook/irsa-webhook/webhook/mappingcheck"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// mappingOptions configure the ServiceAccount-to-role ConfigMap of the reference webhook
// (--watch-config-map there; package mapping has the format).
type mappingOptions struct {
	watch           bool
	roleNames       bool // --compose-role-arn: entries may name a role by name
	name, namespace string
	watcher         *mappingcache.Watcher // set by serviceAccounts when watching
}

func newMappingOptions() mappingOptions {
	return mappingOptions{name: mapping.DefaultConfigMapName, namespace: os.Getenv("POD_NAMESPACE")}
}

func (o *mappingOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.watch, "watch-config-map", o.watch, `also map ServiceAccounts to roles with the reference webhook's ConfigMap (key "config": {"<namespace>/<serviceaccount>": {"RoleARN": ...}}, "<prefix>*" namespace wildcards); a ServiceAccount's own role annotation wins; edits apply to the next pod, deleting the ConfigMap removes the mapping`)
	fs.StringVar(&o.name, "config-map-name", o.name, "--watch-config-map: name of the ConfigMap")
	fs.StringVar(&o.namespace, "config-map-namespace", o.namespace, "--watch-config-map: namespace of the ConfigMap (default: $POD_NAMESPACE); the webhook needs get, list and watch on that one ConfigMap")
}

func (o *mappingOptions) validate() []error {
	if !o.watch {
		return nil
	}
	var errs []error
	if o.namespace == "" {
		errs = append(errs, errors.New("--watch-config-map needs --config-map-namespace (or POD_NAMESPACE)"))
	} else if e := validation.IsDNS1123Label(o.namespace); len(e) > 0 {
		errs = append(errs, fmt.Errorf("--config-map-namespace %q: %s", o.namespace, e[0]))
	}
	if e := validation.IsDNS1123Subdomain(o.name); len(e) > 0 {
		errs = append(errs, fmt.Errorf("--config-map-name %q: %s", o.name, e[0]))
	}
	return errs
}

// serviceAccounts returns the pod path's ServiceAccount source: sas itself, or, with
// --watch-config-map, sas overlaid with the mapping, whose watcher is added to mgr and gates
// readiness (the first pods after a start must see the mapping).
func (o *mappingOptions) serviceAccounts(mgr manager.Manager, cfg *rest.Config, sas pod.ServiceAccounts, prefix string, reg prometheus.Registerer, log logr.Logger) (pod.ServiceAccounts, error) {
	if !o.watch {
		return sas, nil
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client for the mapping ConfigMap: %w", err)
	}
	w := mappingcache.New(client, o.namespace, o.name, log, mappingcache.NewMetrics(reg))
	w.Options = mapping.Options{RoleNames: o.roleNames}
	o.watcher = w
	if err := mgr.Add(w); err != nil {
		return nil, fmt.Errorf("add mapping ConfigMap watcher: %w", err)
	}
	if err := mgr.AddReadyzCheck("mapping-configmap", func(*http.Request) error {
		if !w.HasSynced() {
			return errors.New("mapping ConfigMap not read yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	log.Info("watching the mapping ConfigMap", "configMap", o.namespace+"/"+o.name)
	return mappingcache.ServiceAccounts{Source: sas, Watcher: w, Prefix: prefix}, nil
}

// checkTrust runs the trust check of h for the roles the mapping gives ServiceAccounts: when
// an edit changes them (package mappingcheck), and when a mapped ServiceAccount is created
// (h.Mapped). Call it before the manager starts.
func (o *mappingOptions) checkTrust(ctx context.Context, h *serviceaccount.Handler, rec serviceaccount.EventRecorder, sas mappingcheck.ServiceAccounts, log logr.Logger) {
	if o.watcher == nil {
		return
	}
	from, mapped := o.namespace+"/"+o.name, o.watcher.Mapped(h.Defaults.AnnotationPrefix)
	h.Mapped = func(ns, name string) (map[string]string, string, bool) {
		ann, ok := mapped(ns, name)
		return ann, from, ok
	}
	o.watcher.OnChange(mappingcheck.New(h, rec, sas, from, log).Changed(ctx))
}
