package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvDir names the environment variable that points at a directory already holding etcd,
// kube-apiserver and kubectl; when set, [Binaries] builds nothing.
const EnvDir = "IRSA_CONTROL_PLANE_DIR"

// buildScript is the build script's path relative to the module root.
const buildScript = "test/tools/build-control-plane.sh"

// Binary names expected in the binaries directory.
const (
	binEtcd      = "etcd"
	binAPIServer = "kube-apiserver"
	binKubectl   = "kubectl"
)

// Binaries returns the directory holding etcd, kube-apiserver and kubectl: $IRSA_CONTROL_PLANE_DIR
// if set, otherwise the directory printed by test/tools/build-control-plane.sh, which builds them
// into a per-version cache the first time (about 9 minutes cold; its progress goes to os.Stderr).
// Concurrent callers (test packages run in parallel) wait for each other instead of building
// the same files twice.
func Binaries(ctx context.Context) (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		if err := checkBinaries(dir); err != nil {
			return "", fmt.Errorf("use control-plane binaries from $%s: %w", EnvDir, err)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", buildScript, err)
	}
	root, err := findUp(wd, buildScript)
	if err != nil {
		return "", fmt.Errorf("find %s (run inside the repository or set $%s): %w", buildScript, EnvDir, err)
	}
	unlock, err := lockBuild(ctx)
	if err != nil {
		return "", fmt.Errorf("wait for another control-plane build: %w", err)
	}
	defer unlock()

	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, buildScript))
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build control-plane binaries with %s: %w", buildScript, err)
	}
	dir := lastLine(stdout.String())
	if dir == "" {
		return "", fmt.Errorf("build control-plane binaries with %s: it printed no directory", buildScript)
	}
	if err := checkBinaries(dir); err != nil {
		return "", fmt.Errorf("build control-plane binaries with %s: %w", buildScript, err)
	}
	return dir, nil
}

// findUp returns the first directory at or above dir that contains rel.
func findUp(dir, rel string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in any parent directory", rel)
		}
		dir = parent
	}
}

// lastLine returns the last non-blank line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// checkBinaries reports every binary missing from dir at once.
func checkBinaries(dir string) error {
	var errs []error
	for _, name := range []string{binEtcd, binAPIServer, binKubectl} {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("no %s in %s: %w", name, dir, err))
		case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s in %s is not an executable file", name, dir))
		}
	}
	return errors.Join(errs...)
}
