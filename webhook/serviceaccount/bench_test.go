package serviceaccount_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// BenchmarkHandleWarm is one ServiceAccount admission whose role's policy is cached: the
// trust check's hot path (parse the cached policy, evaluate). It reports the p99 too.
func BenchmarkHandleWarm(b *testing.B) {
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(goodRole, policyFor(b, "production", "s3-writer"))
	h := &serviceaccount.Handler{Mode: serviceaccount.Enforce, Timeout: time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(),
		Source: newSource(b, srv), Metrics: serviceaccount.NewMetrics(nil), Log: logr.Discard()}
	req := saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, true)
	if r := h.Handle(context.Background(), req); !r.Allowed || len(r.Warnings) > 0 {
		b.Fatalf("not trusted: %+v", r)
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		h.Handle(context.Background(), req)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkManyServiceAccountsFewRoles: 10,000 ServiceAccount admissions, 64 at a time,
// naming 100 distinct roles, against an IAM endpoint that takes 200 ms per GetRole. It
// reports the GetRole calls made (one per role is the goal) and the p99 admission time.
func BenchmarkManyServiceAccountsFewRoles(b *testing.B) {
	const admissions, roles, parallel = 10000, 100, 64
	for b.Loop() {
		srv := iamserver.New()
		for i := range roles {
			srv.PutRole(fmt.Sprintf("arn:aws:iam::123456789012:role/R%d", i), policyFor(b, "production", "s3-writer"))
		}
		src := newSource(b, srv)
		srv.ResetCalls()
		srv.SetDelay(200 * time.Millisecond)
		h := &serviceaccount.Handler{Mode: serviceaccount.Warn, Timeout: 3 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(),
			Source: src, Metrics: serviceaccount.NewMetrics(nil), Log: logr.Discard()}
		reqs := make(chan int)
		lat := make([]time.Duration, admissions)
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() {
				for i := range reqs {
					t := time.Now()
					h.Handle(context.Background(), saRequest(admissionv1.Create, "production", fmt.Sprintf("sa-%d", i), role(fmt.Sprintf("arn:aws:iam::123456789012:role/R%d", i%roles)), nil, true))
					lat[i] = time.Since(t)
				}
			})
		}
		for i := range admissions {
			reqs <- i
		}
		close(reqs)
		wg.Wait()
		slices.Sort(lat)
		b.ReportMetric(float64(srv.TotalCalls()), "GetRole-calls")
		b.ReportMetric(float64(lat[admissions*99/100].Milliseconds()), "p99-ms")
		srv.Close()
	}
}
