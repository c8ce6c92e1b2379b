// Package controlplane runs a real etcd and kube-apiserver on loopback for integration tests and
// local demos: the ServiceAccount admission plugin is on (pods get the kube-api-access projected
// volume before webhooks see them), service-account tokens are signed RS256 with our own RSA key
// for an https issuer (what STS and IAM OIDC providers require), --api-audiences includes
// sts.amazonaws.com, authorization is RBAC, and an admin kubeconfig is written to disk for kubectl.
// Webhooks registered with clientConfig.url https://127.0.0.1:PORT/... and a caBundle are called
// (the default admission chain includes the webhook plugins; no egress selector is configured).
// No controller-manager or scheduler runs: create the ServiceAccounts a test needs (there is no
// "default" one) and do not expect pods to be scheduled.
//
// # Why not envtest
//
// controller-runtime's envtest can be configured for all of the above (re-enable the plugin by
// not passing --disable-admission-plugins, Set our SA key files, issuer and audiences, and give
// it a CertDir so that a restarted apiserver keeps its serving CA). This package still execs the
// binaries itself, because envtest's process handling does not fit a shared 2-core machine:
//   - envtest starts etcd and kube-apiserver in their own process group, without a parent-death
//     signal, and keeps the PIDs unexported; a test binary that times out or panics leaves both
//     running (~340 MB, two ports). Here the children get SIGKILL when the test process dies
//     (Linux) and stay in its process group, so Ctrl-C reaches them.
//   - envtest's Start takes no context, checks /healthz rather than /readyz, and
//     envtest.Environment retries a failed start five times (20 s each by default) and reports it
//     without the process output. Here a failed start returns at once with the first error lines
//     and the last lines of the log.
//   - We override most of envtest's apiserver defaults anyway, and importing it adds
//     controller-runtime to this test binary (minutes of first compile on two cores). Exec'ing
//     the two binaries costs a few hundred lines here, and exercises the certs package.
//
// # Binaries
//
// [Binaries] runs test/tools/build-control-plane.sh (found by walking up from the working
// directory), which builds etcd, kube-apiserver and kubectl into a per-version cache once;
// set IRSA_CONTROL_PLANE_DIR to use a directory that already holds them. If the binaries cannot
// be built or started, tests fail; they never skip.
//
// # One control plane per test package
//
// Starting takes a few seconds, so start it once in TestMain with [Main]:
//
//	var cp *controlplane.ControlPlane
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.Main(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
//	}
//
//	func TestSomething(t *testing.T) {
//		cs := kubernetes.NewForConfigOrDie(cp.Config())
//		// create a namespace per test so that tests stay independent
//		...
//	}
//
// Tests that call [ControlPlane.RestartAPIServer] must not run in parallel with others using the
// same control plane.
package controlplane
