package trustcheck_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// postReview POSTs an AdmissionReview for sa straight to the webhook's HTTPS port, as any
// pod of the cluster can (no client authentication), and returns the answer.
func postReview(t *testing.T, p *webhookproc.Process, sa *corev1.ServiceAccount) *admissionv1.AdmissionResponse {
	t.Helper()
	sa = sa.DeepCopy()
	sa.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}
	raw, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	rv := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("forged-" + sa.Name), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"},
			Name:     sa.Name, Namespace: sa.Namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(&rv)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.Options().TLS.CAPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(p.URL(webhookproc.ServiceAccountPath), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST review: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out admissionv1.AdmissionReview
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.Response == nil {
		t.Fatalf("review answered HTTP %d: %s", resp.StatusCode, data)
	}
	return out.Response
}

// attackerText is what a forged review writes into the role annotation, hoping to see it
// in an Event in someone else's namespace.
const attackerText = "arn:aws:iam::123456789012:role/PLEASE-RUN-kubectl-delete-ns-prod"

// TestForgedReviewWritesNoEvent: reviews POSTed straight to the webhook (its port is open to
// every pod) name ServiceAccounts that are never stored: kube-system/coredns (a system
// namespace, checked like any other by default), an existing ServiceAccount with a made-up
// UID, and one that does not exist.
// None writes an Event; the webhook drops the deferred ones once they are not stored in
// time (its debug log says so). A ServiceAccount created through the API server still gets
// its Event (TestWrongNamespaceWarnsAndRecordsEvent, and the control case below).
func TestForgedReviewWritesNoEvent(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "forged-events")
	if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "victim"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := suite.webhooks["warn"]
	forged := []*corev1.ServiceAccount{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns", UID: "11111111-1111-1111-1111-111111111111"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim", UID: "22222222-2222-2222-2222-222222222222"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost", UID: "33333333-3333-3333-3333-333333333333"}},
	}
	for _, sa := range forged {
		sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": attackerText}
		resp := postReview(t, p, sa)
		if !resp.Allowed {
			t.Errorf("warn mode denied the forged review of %s/%s: %+v", sa.Namespace, sa.Name, resp.Result)
		}
	}
	// The control: a real ServiceAccount whose role does not trust it, created through the API
	// server after the forged reviews, gets its Event.
	if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "real", trustedRole), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ns, "real", "TrustPolicyMismatch")

	// Wait until the webhook has given up on the three deferred forged Events, failing at once
	// if any forged Event shows up.
	deadline := time.Now().Add(45 * time.Second)
	for {
		for _, where := range [][2]string{{"kube-system", "coredns"}, {ns, "victim"}, {ns, "ghost"}} {
			if e := trustEvents(ctx, where[0], where[1]); len(e) > 0 {
				t.Fatalf("a forged review wrote Events about %s/%s: %q", where[0], where[1], e)
			}
		}
		if n := droppedInLog(t, p, forged[0].UID, forged[1].UID, forged[2].UID); n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook never dropped the forged Events (no debug log line for their UIDs)%s", p.LogTail())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if e := trustEvents(ctx, "kube-system", "coredns"); len(e) > 0 {
		t.Errorf("Events in kube-system: %q", e)
	}
	list, err := suite.cs.EventsV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if strings.Contains(e.Note, "PLEASE-RUN") {
			t.Errorf("Event %s/%s carries the forged text: %q", e.Namespace, e.Name, e.Note)
		}
	}
}

// droppedInLog counts the UIDs that the webhook's log reports as dropped Events.
func droppedInLog(t *testing.T, p *webhookproc.Process, uids ...types.UID) int {
	t.Helper()
	data, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatalf("read webhook log: %v", err)
	}
	n := 0
	for _, uid := range uids {
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(line, "trust check event dropped") && strings.Contains(line, fmt.Sprintf("%q", string(uid))) {
				n++
				break
			}
		}
	}
	return n
}
