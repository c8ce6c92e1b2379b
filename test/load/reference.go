package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// The performance issue's targets are relative to the reference webhook
// (aws/amazon-eks-pod-identity-webhook), measured side by side. Nothing of it is in this
// repository: -reference names a binary the measurer built from its source, and this file
// only runs it, out of cluster, with the flags that project documents: the same serving
// certificate, the same kube-apiserver, the same AdmissionReview and the same load.

// referencePath is where the reference webhook serves its mutation.
const referencePath = "/mutate"

// reference is a running reference webhook.
type reference struct {
	cmd         *exec.Cmd
	port        int
	metricsPort int
	logPath     string
	exited      chan struct{}
}

func startReference(binary, kubeconfig string, t webhookproc.TLS, dir string) (*reference, error) {
	ports, err := controlplane.FreePorts(2)
	if err != nil {
		return nil, err
	}
	r := &reference{port: ports[0], metricsPort: ports[1], logPath: filepath.Join(dir, "reference.log"), exited: make(chan struct{})}
	log, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(binary, "--in-cluster=false", "--kubeconfig="+kubeconfig,
		"--tls-cert="+t.CertFile, "--tls-key="+t.KeyFile,
		"--port="+strconv.Itoa(r.port), "--metrics-port="+strconv.Itoa(r.metricsPort), "--logtostderr")
	r.cmd.Stdout, r.cmd.Stderr = log, log
	// Never outlive the measurement.
	if err := controlplane.StartChild(r.cmd, log, func(error) { close(r.exited) }); err != nil {
		return nil, fmt.Errorf("start the reference webhook: %w", err)
	}
	return r, nil
}

func (r *reference) URL() string { return "https://127.0.0.1:" + strconv.Itoa(r.port) + referencePath }
func (r *reference) PID() int    { return r.cmd.Process.Pid }

// waitReady waits until the reference answers review with a patch: it serves /healthz before
// its ServiceAccount informer has synced, and admits pods unchanged until then.
func (r *reference) waitReady(ctx context.Context, review, caPEM []byte, timeout time.Duration) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate in the caBundle")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = r.answersWithPatch(ctx, client, review); last == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("the reference webhook exited: %s", tail(r.logPath))
		case <-ctx.Done():
			return fmt.Errorf("the reference webhook is not answering with a patch after %s: %w; log: %s", timeout, last, tail(r.logPath))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *reference) answersWithPatch(ctx context.Context, client *http.Client, review []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL(), bytes.NewReader(review))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	allowed, patch, err := answer(body)
	if err != nil {
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if !allowed || len(patch) == 0 {
		return fmt.Errorf("HTTP %d, no patch yet: %.200s", resp.StatusCode, body)
	}
	return nil
}

// answer reads an AdmissionReview answer: whether it allows, and its patch.
func answer(body []byte) (allowed bool, patch []byte, err error) {
	var out struct {
		Response struct {
			Allowed bool   `json:"allowed"`
			Patch   []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return false, nil, fmt.Errorf("decode the webhook's answer: %w: %.200s", err, body)
	}
	return out.Response.Allowed, out.Response.Patch, nil
}

func (r *reference) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// tail is the end of a log file, for errors.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
