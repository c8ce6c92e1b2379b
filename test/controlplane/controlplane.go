package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/irsa-webhook/irsa-webhook/certs"
)

// Audiences the apiserver accepts in service-account tokens (--api-audiences) by default.
const (
	AudienceKubernetes = "https://kubernetes.default.svc"
	AudienceSTS        = "sts.amazonaws.com"
)

// AdminUser is the user name (O=system:masters) of Config and the kubeconfig.
const AdminUser = "irsa-admin"

const (
	defaultStartTimeout = 60 * time.Second // per process; kube-apiserver needs ~3 s idle, more under load
	defaultStopTimeout  = 20 * time.Second // per process, SIGTERM to SIGKILL
	certValidity        = 365 * 24 * time.Hour
	saKeyBits           = 2048 // RS256 signing key for service-account tokens
	clusterName         = "irsa-controlplane"
	serviceCIDR         = "10.0.0.0/24"
	etcdName            = "default"
	clientQPS           = 100
	clientBurst         = 200
	checkBodyLimit      = 4 << 10 // bytes of a failed readiness body kept for the error
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir holds etcd, kube-apiserver and kubectl. Empty means the result of Binaries.
	Dir string
	// IssuerURL is --service-account-issuer, an https URL. Empty means the apiserver's own URL
	// (https://127.0.0.1:PORT), where /.well-known/openid-configuration is then served.
	IssuerURL string
	// Audiences is --api-audiences. Empty means AudienceKubernetes and AudienceSTS.
	Audiences []string
	// APIServerFlags sets or overrides kube-apiserver flags: name without "--" to value.
	APIServerFlags map[string]string
	// StartTimeout bounds each process's start until ready; default 60s.
	StartTimeout time.Duration
	// StopTimeout is how long each process may take to exit after SIGTERM; default 20s.
	StopTimeout time.Duration
}

// ControlPlane is a running etcd + kube-apiserver. Its methods are safe for concurrent use,
// but RestartAPIServer makes the apiserver unavailable to everyone for a few seconds.
type ControlPlane struct {
	opts           Options
	root           string // temporary directory holding everything below
	logDir         string
	kubeconfigPath string
	host           string // https://127.0.0.1:PORT
	issuer         string
	etcdURL        string
	apiArgs        []string
	servingCA      []byte
	clientCA       *certs.CA
	admin          *rest.Config

	mu      sync.Mutex
	etcd    *process
	api     *process
	stopped bool
}

// Start starts etcd and kube-apiserver on free loopback ports in a new temporary directory and
// returns once /readyz answers 200. On failure everything started is stopped and the error
// holds the first error lines and the last lines of the failing process's log; the log
// directory is kept and named in the error.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	if opts.Dir == "" {
		dir, err := Binaries(ctx)
		if err != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
		opts.Dir = dir
	}
	if err := checkBinaries(opts.Dir); err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	if len(opts.Audiences) == 0 {
		opts.Audiences = []string{AudienceKubernetes, AudienceSTS}
	}
	root, err := os.MkdirTemp("", "irsa-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("start control plane: create temporary directory: %w", err)
	}
	cp := &ControlPlane{opts: opts, root: root, logDir: filepath.Join(root, "logs")}
	if err := cp.start(ctx, time.Now()); err != nil {
		cp.abort()
		return nil, fmt.Errorf("start control plane: %w\n(logs kept in %s)", err, cp.logDir)
	}
	return cp, nil
}

// validate reports every problem with the options at once.
func (o Options) validate() error {
	var errs []error
	if o.IssuerURL != "" {
		u, err := url.Parse(o.IssuerURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("issuer URL %q: %w", o.IssuerURL, err))
		case u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("issuer URL %q must be https://host[/path] without query or fragment", o.IssuerURL))
		}
	}
	for _, a := range o.Audiences {
		if a == "" || strings.Contains(a, ",") {
			errs = append(errs, fmt.Errorf("audience %q is empty or contains a comma", a))
		}
	}
	if o.StartTimeout < 0 || o.StopTimeout < 0 {
		errs = append(errs, fmt.Errorf("timeouts must not be negative (start %v, stop %v)", o.StartTimeout, o.StopTimeout))
	}
	for name := range o.APIServerFlags {
		if name == "" || strings.HasPrefix(name, "-") {
			errs = append(errs, fmt.Errorf("apiserver flag name %q must be non-empty and given without dashes", name))
		}
	}
	return errors.Join(errs...)
}

func (cp *ControlPlane) start(ctx context.Context, now time.Time) error {
	dataDir := filepath.Join(cp.root, "etcd")
	pkiDir := filepath.Join(cp.root, "pki")
	for _, d := range []string{dataDir, pkiDir, cp.logDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	etcdClientPort, etcdPeerPort, apiPort := ports[0], ports[1], ports[2]
	cp.etcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdClientPort)
	cp.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	cp.issuer = cp.opts.IssuerURL
	if cp.issuer == "" {
		cp.issuer = cp.host
	}

	files, err := cp.writePKI(pkiDir, now)
	if err != nil {
		return err
	}

	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort)
	etcdArgs := []string{
		"--name=" + etcdName,
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + cp.etcdURL,
		"--advertise-client-urls=" + cp.etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + etcdName + "=" + peerURL,
		"--unsafe-no-fsync=true", // throwaway data; fsync only slows tests down
	}
	cp.etcd, err = startProcess(binEtcd, filepath.Join(cp.opts.Dir, binEtcd), etcdArgs, filepath.Join(cp.logDir, "etcd.log"))
	if err != nil {
		return err
	}
	if err := cp.etcd.waitReady(ctx, cp.opts.StartTimeout, cp.etcdHealthy); err != nil {
		return err
	}

	flags := map[string]string{
		"etcd-servers":                     cp.etcdURL,
		"bind-address":                     "127.0.0.1",
		"secure-port":                      strconv.Itoa(apiPort),
		"advertise-address":                "127.0.0.1",
		"endpoint-reconciler-type":         "none", // a loopback advertise address is refused otherwise
		"tls-cert-file":                    files.servingCert,
		"tls-private-key-file":             files.servingKey,
		"client-ca-file":                   files.clientCA,
		"service-account-issuer":           cp.issuer,
		"service-account-key-file":         files.saPublic,
		"service-account-signing-key-file": files.saPrivate,
		"api-audiences":                    strings.Join(cp.opts.Audiences, ","),
		"authorization-mode":               "RBAC",
		"service-cluster-ip-range":         serviceCIDR,
		"allow-privileged":                 "true",
		// Close open watches on SIGTERM instead of waiting for them up to the request timeout
		// (60s): with an informer connected, a restart would otherwise hit the stop timeout.
		"shutdown-watch-termination-grace-period": "5s",
	}
	maps.Copy(flags, cp.opts.APIServerFlags)
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		cp.apiArgs = append(cp.apiArgs, "--"+name+"="+flags[name])
	}
	if err := cp.startAPIServer(ctx); err != nil {
		return err
	}
	return cp.writeKubeconfig()
}

type pkiFiles struct {
	servingCert, servingKey, clientCA, saPublic, saPrivate string
}

// writePKI creates the apiserver's serving certificate, the client CA with the admin client
// certificate, and the RSA service-account key pair.
func (cp *ControlPlane) writePKI(dir string, now time.Time) (pkiFiles, error) {
	f := pkiFiles{
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		clientCA:    filepath.Join(dir, "client-ca.crt"),
		saPublic:    filepath.Join(dir, "sa.pub"),
		saPrivate:   filepath.Join(dir, "sa.key"),
	}
	servingCA, err := certs.NewCA(clusterName+"-serving-ca", now, certValidity)
	if err != nil {
		return f, err
	}
	servingCert, servingKey, err := servingCA.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, now, certValidity)
	if err != nil {
		return f, err
	}
	cp.clientCA, err = certs.NewCA(clusterName+"-client-ca", now, certValidity)
	if err != nil {
		return f, err
	}
	adminCert, adminKey, err := issueClient(cp.clientCA, AdminUser, []string{"system:masters"}, now, certValidity)
	if err != nil {
		return f, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, saKeyBits)
	if err != nil {
		return f, fmt.Errorf("generate RSA service-account signing key: %w", err)
	}
	saPrivDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return f, fmt.Errorf("marshal service-account signing key: %w", err)
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return f, fmt.Errorf("marshal service-account public key: %w", err)
	}
	cp.servingCA = servingCA.CertPEM()
	cp.admin = &rest.Config{
		Host: cp.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.servingCA,
			CertData: adminCert,
			KeyData:  adminKey,
		},
		QPS:   clientQPS,
		Burst: clientBurst,
	}
	return f, writeFiles(map[string][]byte{
		f.servingCert: servingCert,
		f.servingKey:  servingKey,
		f.clientCA:    cp.clientCA.CertPEM(),
		f.saPublic:    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
		f.saPrivate:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saPrivDER}),
	})
}

// startAPIServer starts kube-apiserver with the recorded flags and waits for /readyz.
func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	api, err := startProcess(binAPIServer, filepath.Join(cp.opts.Dir, binAPIServer), cp.apiArgs, filepath.Join(cp.logDir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	cp.api = api
	httpClient, err := rest.HTTPClientFor(cp.admin)
	if err != nil {
		return fmt.Errorf("build readiness client: %w", err)
	}
	defer httpClient.CloseIdleConnections()
	return api.waitReady(ctx, cp.opts.StartTimeout, func(ctx context.Context) error {
		return getOK(ctx, httpClient, cp.host+"/readyz")
	})
}

func (cp *ControlPlane) etcdHealthy(ctx context.Context) error {
	return getOK(ctx, http.DefaultClient, cp.etcdURL+"/health")
}

// getOK GETs url and wants 200.
func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, checkBodyLimit))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (cp *ControlPlane) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: cp.host, CertificateAuthorityData: cp.servingCA}
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cp.admin.CertData,
		ClientKeyData:         cp.admin.KeyData,
	}
	cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: AdminUser, Namespace: "default"}
	cfg.CurrentContext = clusterName
	cp.kubeconfigPath = filepath.Join(cp.root, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, cp.kubeconfigPath); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// abort stops what a failed start left running and removes everything but the logs.
func (cp *ControlPlane) abort() {
	_ = cp.api.stop(cp.opts.StopTimeout)
	_ = cp.etcd.stop(cp.opts.StopTimeout)
	entries, _ := os.ReadDir(cp.root)
	for _, e := range entries {
		if p := filepath.Join(cp.root, e.Name()); p != cp.logDir {
			_ = os.RemoveAll(p)
		}
	}
}

// Config returns a new admin (system:masters) client configuration.
func (cp *ControlPlane) Config() *rest.Config { return rest.CopyConfig(cp.admin) }

// UserConfig returns a client configuration authenticating as name in groups, with a client
// certificate from the apiserver's client CA: for RBAC tests without impersonation.
func (cp *ControlPlane) UserConfig(name string, groups []string) (*rest.Config, error) {
	certPEM, keyPEM, err := issueClient(cp.clientCA, name, groups, time.Now(), certValidity)
	if err != nil {
		return nil, fmt.Errorf("create client configuration for user %q: %w", name, err)
	}
	cfg := rest.CopyConfig(cp.admin)
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	return cfg, nil
}

// KubeconfigPath is the admin kubeconfig file (current context irsa-controlplane).
func (cp *ControlPlane) KubeconfigPath() string { return cp.kubeconfigPath }

// IssuerURL is the service-account token issuer (--service-account-issuer).
func (cp *ControlPlane) IssuerURL() string { return cp.issuer }

// Host is the apiserver's URL, https://127.0.0.1:PORT.
func (cp *ControlPlane) Host() string { return cp.host }

// CACertPEM is the CA of the apiserver's serving certificate.
func (cp *ControlPlane) CACertPEM() []byte { return slices.Clone(cp.servingCA) }

// LogDir holds etcd.log and kube-apiserver.log (appended across restarts).
func (cp *ControlPlane) LogDir() string { return cp.logDir }

// Kubectl returns a kubectl command (from the binaries directory) using the admin kubeconfig.
func (cp *ControlPlane) Kubectl(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(cp.opts.Dir, binKubectl), append([]string{"--kubeconfig=" + cp.kubeconfigPath}, args...)...)
}

// RestartAPIServer stops kube-apiserver and starts it again with the same flags, port,
// certificates and keys against the same etcd, returning once /readyz answers 200. Clients
// from Config keep working afterwards; tokens issued before remain valid.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return errors.New("restart kube-apiserver: control plane is stopped")
	}
	if err := cp.api.stop(cp.opts.StopTimeout); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	if err := cp.startAPIServer(ctx); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	return nil
}

// Stop stops kube-apiserver and etcd and removes the temporary directory. Calling it again
// does nothing.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return nil
	}
	cp.stopped = true
	var errs []error
	if err := cp.api.stop(cp.opts.StopTimeout); err != nil {
		errs = append(errs, err)
	}
	if err := cp.etcd.stop(cp.opts.StopTimeout); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(cp.root); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", cp.root, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop control plane: %w", err)
	}
	return nil
}

// Main runs a test package against one control plane: it starts it (building the binaries if
// needed), passes it to use, runs m and stops it, printing timings to os.Stderr. It returns
// the exit code for os.Exit; a failed start is exit code 1, so tests fail rather than skip.
// On SIGINT or SIGTERM it stops the control plane and exits 130.
func Main(m interface{ Run() int }, opts Options, use func(*ControlPlane)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var running atomic.Pointer[ControlPlane]
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		cancel() // abandons a start in progress
		if cp := running.Load(); cp != nil {
			fmt.Fprintln(os.Stderr, "[control-plane] interrupted; stopping")
			_ = cp.Stop()
			os.Exit(130)
		}
	}()

	began := time.Now()
	cp, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[control-plane] %v\n", err)
		return 1
	}
	running.Store(cp)
	fmt.Fprintf(os.Stderr, "[control-plane] ready in %v at %s (kubeconfig %s)\n",
		time.Since(began).Round(time.Millisecond), cp.Host(), cp.KubeconfigPath())
	use(cp)
	code := m.Run()

	began = time.Now()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "[control-plane] %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	fmt.Fprintf(os.Stderr, "[control-plane] stopped in %v\n", time.Since(began).Round(time.Millisecond))
	return code
}
