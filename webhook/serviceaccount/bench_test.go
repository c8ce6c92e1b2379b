package serviceaccount_test

import (
	"context"
	"encoding/json"
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
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// BenchmarkVerifyWarm is one trust check whose role's policy is in the IAM source's cache:
// the minimal policy, and a policy trusting ten clusters (nine others, then this one), as
// a role shared by a fleet has. The parse is cached with the document, so a check costs
// the evaluation only.
//
//	go test ./webhook/serviceaccount/ -run '^$' -bench VerifyWarm -benchmem -count 10
func BenchmarkVerifyWarm(b *testing.B) {
	for _, tc := range []struct {
		name string
		doc  string
	}{
		{"minimal", policyFor(b, "production", "s3-writer")},
		{"ten clusters", fleetPolicy(b, 9)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := iamserver.New()
			defer srv.Close()
			srv.PutRole(goodRole, tc.doc)
			src := newSource(b, srv)
			r := trustpolicy.Request{RoleARN: goodRole, IssuerURL: issuer, Namespace: "production", ServiceAccount: "s3-writer", Audience: "sts.amazonaws.com"}
			if v := serviceaccount.Verify(context.Background(), src, r); v.Result != trustpolicy.Trusted {
				b.Fatalf("not trusted: %s", v.Summary())
			}
			b.ReportAllocs()
			for b.Loop() {
				serviceaccount.Verify(context.Background(), src, r)
			}
		})
	}
}

// fleetPolicy is the minimal policy for production/s3-writer after one statement of the same
// shape for each of n other clusters.
func fleetPolicy(b *testing.B, n int) string {
	var doc struct {
		Version   string
		Statement []json.RawMessage
	}
	if err := json.Unmarshal([]byte(policyFor(b, "production", "s3-writer")), &doc); err != nil {
		b.Fatal(err)
	}
	var others []json.RawMessage
	for i := range n {
		other, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: goodRole, IssuerURL: fmt.Sprintf("https://oidc.eks.eu-west-1.amazonaws.com/id/CLUSTER%02d", i),
			Namespace: fmt.Sprintf("team-%d", i), ServiceAccount: "s3-writer", Audience: "sts.amazonaws.com"})
		if err != nil {
			b.Fatal(err)
		}
		var d struct{ Statement []json.RawMessage }
		if err := json.Unmarshal([]byte(other), &d); err != nil {
			b.Fatal(err)
		}
		others = append(others, d.Statement...)
	}
	doc.Statement = append(others, doc.Statement...)
	out, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

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
