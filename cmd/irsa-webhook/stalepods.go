package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Pods are listed in pages of auditPageSize, at most auditMaxPages pages (100,000 pods).
const (
	auditPageSize = 500
	auditMaxPages = 200
)

// stalePods lists every pod (page by page, bounded) and returns, by "namespace/name" of
// their ServiceAccount, the running ones whose credentials are not those their ServiceAccount
// names now (doctor.Stale).
func stalePods(ctx context.Context, cs kubernetes.Interface, sas []corev1.ServiceAccount, d irsa.Defaults, warn io.Writer) (map[string][]doctor.StalePod, error) {
	type roleOf struct {
		sa *corev1.ServiceAccount
		s  irsa.Settings
	}
	roles := map[string]roleOf{}
	for i := range sas {
		sa := &sas[i]
		if s, decision, _ := irsa.ForServiceAccount(irsa.Object{Namespace: sa.Namespace, Name: sa.Name, Annotations: sa.Annotations}, d); decision == irsa.Inject {
			roles[sa.Namespace+"/"+sa.Name] = roleOf{sa, s}
		}
	}
	out := map[string][]doctor.StalePod{}
	if len(roles) == 0 {
		return out, nil
	}
	opts := metav1.ListOptions{Limit: auditPageSize}
	for page := 0; ; page++ {
		if page == auditMaxPages {
			fmt.Fprintf(warn, "irsa-webhook: stale pods: stopped after %d pods; the rest were not examined\n", auditPageSize*auditMaxPages)
			return out, nil
		}
		list, err := cs.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			name := p.Spec.ServiceAccountName
			if name == "" {
				name = "default"
			}
			key := p.Namespace + "/" + name
			r, ok := roles[key]
			if !ok {
				continue
			}
			if sp, stale := doctor.Stale(p, r.sa, r.s, d); stale {
				out[key] = append(out[key], sp)
			}
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return out, nil
		}
	}
}

// printStalePods prints the stale pods of the rows after the verdicts.
func printStalePods(w io.Writer, rows []auditRow) error {
	var any bool
	for _, r := range rows {
		any = any || len(r.StalePods) > 0
	}
	if !any {
		return nil
	}
	fmt.Fprintln(w, "\nSTALE PODS: the webhook injects credentials only when a pod is created; restart these")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tSERVICEACCOUNT\tACTION\tREASON")
	for _, r := range rows {
		for _, p := range r.StalePods {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, p.ServiceAccount, p.Action, p.Reason)
		}
	}
	return tw.Flush()
}
