package awsiam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// maxPolicyFileSize bounds a trust policy file. IAM caps trust policies at 4096 characters
// by default (8192 with a quota increase); URL encoding at most triples that.
const maxPolicyFileSize = 64 << 10

// DirSource reads trust policies from files (--trust-policy-dir), for clusters without
// IAM access and for tests: the policy of arn:...:role/<path>/<name> is DIR/<name>.json.
// Only the role name selects the file; path and account are not checked.
type DirSource struct {
	dir string
}

// NewDirSource returns a DirSource reading dir. The directory is read on every lookup, so
// files can be added or changed while the webhook runs.
func NewDirSource(dir string) *DirSource { return &DirSource{dir: dir} }

// TrustPolicy returns the text of DIR/<role-name>.json as is: plain JSON or URL-encoded
// JSON as IAM returns it (trustpolicy.Parse accepts both). A missing file is ErrNotFound;
// a missing directory or an unreadable file is ErrUnavailable.
func (d *DirSource) TrustPolicy(ctx context.Context, roleARN string) (string, error) {
	a, err := irsa.ParseRoleARN(roleARN)
	if err != nil {
		return "", &Error{RoleARN: roleARN, Class: ErrInvalidARN, Err: err}
	}
	// The name is IAM's character set ([A-Za-z0-9+=,.@_-]), so it cannot leave dir.
	path := filepath.Join(d.dir, a.Name+".json")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(d.dir); derr != nil {
			return "", &Error{RoleARN: roleARN, Class: ErrUnavailable, Detail: "read trust policy directory", Err: derr}
		}
		return "", &Error{RoleARN: roleARN, Class: ErrNotFound, Detail: fmt.Sprintf("no file %s", path)}
	}
	if err != nil {
		return "", &Error{RoleARN: roleARN, Class: ErrUnavailable, Detail: "read trust policy file", Err: err}
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	text, err := io.ReadAll(io.LimitReader(f, maxPolicyFileSize+1))
	if err != nil {
		return "", &Error{RoleARN: roleARN, Class: ErrUnavailable, Detail: "read trust policy file", Err: err}
	}
	if len(text) > maxPolicyFileSize {
		return "", &Error{RoleARN: roleARN, Class: ErrUnavailable, Detail: fmt.Sprintf("trust policy file %s is larger than %d bytes", path, maxPolicyFileSize)}
	}
	return string(text), nil
}
