package irsa

import (
	"fmt"
	"strings"
)

// RoleARN is a parsed IAM role ARN: arn:<partition>:iam::<account>:role<path><name>.
type RoleARN struct {
	Partition string // aws, aws-cn, aws-us-gov, aws-iso, ...
	AccountID string // 12 digits
	Path      string // "/" or "/a/b/"
	Name      string // the role name GetRole takes (without the path)
}

// String renders the ARN back in its canonical form.
func (a RoleARN) String() string {
	return "arn:" + a.Partition + ":iam::" + a.AccountID + ":role" + a.Path + a.Name
}

// Account is the AWS partition and account ID that a role name is completed with
// (--compose-role-arn): the webhook's own, from STS GetCallerIdentity.
type Account struct {
	Partition string // aws, aws-cn, ...
	ID        string // 12 digits
}

// IsRoleName reports whether a role annotation's value is a role name or "path/name" to be
// completed into an ARN, rather than an ARN: anything that does not start with "arn:".
func IsRoleName(v string) bool { return v != "" && !strings.HasPrefix(v, "arn:") }

// ComposeRoleARN completes a role name or "path/name" into the ARN of that role in account
// a: "app" becomes arn:<partition>:iam::<account>:role/app and "team/app" role/team/app.
// The result is not validated: ParseRoleARN does that.
func ComposeRoleARN(name string, a Account) string {
	return "arn:" + a.Partition + ":iam::" + a.ID + ":role/" + name
}

// ValidRoleName checks a role name or "path/name" as ComposeRoleARN will use it.
func ValidRoleName(name string) error {
	if _, err := ParseRoleARN(ComposeRoleARN(name, Account{Partition: "aws", ID: "000000000000"})); err != nil {
		return fmt.Errorf("role name %s is not a role name or path/name: %w", quoteShort(name), err)
	}
	return nil
}

// Bounds IAM documents for role names and paths.
const (
	maxRoleNameLen = 64
	maxRolePathLen = 512
)

// ParseRoleARN parses and validates an IAM role ARN in any partition, with or without a path.
// The character sets are IAM's for role names; for paths we accept the same set plus '/',
// which is narrower than IAM's printable-ASCII rule on purpose: quotes, spaces and control
// characters in an ARN that is copied into every container's environment are always a mistake.
func ParseRoleARN(s string) (RoleARN, error) {
	var a RoleARN
	if s == "" {
		return a, fmt.Errorf("role ARN is empty")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return a, fmt.Errorf("role ARN %s contains a space, control or non-ASCII character at offset %d", quoteShort(s), i)
		}
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return a, fmt.Errorf("role ARN %s is not of the form arn:<partition>:iam::<account-id>:role/<name>", quoteShort(s))
	}
	partition, service, region, account, resource := parts[1], parts[2], parts[3], parts[4], parts[5]
	if !validPartition(partition) {
		return a, fmt.Errorf("role ARN %s has an invalid partition %s", quoteShort(s), quoteShort(partition))
	}
	if service != "iam" {
		return a, fmt.Errorf("role ARN %s names service %s, want iam", quoteShort(s), quoteShort(service))
	}
	if region != "" {
		return a, fmt.Errorf("role ARN %s has a region %s; IAM ARNs have none", quoteShort(s), quoteShort(region))
	}
	if len(account) != 12 || !allDigits(account) {
		return a, fmt.Errorf("role ARN %s has account %s, want 12 digits", quoteShort(s), quoteShort(account))
	}
	rest, ok := strings.CutPrefix(resource, "role/")
	if !ok {
		return a, fmt.Errorf("role ARN %s does not name a role (resource %s must start with role/)", quoteShort(s), quoteShort(resource))
	}
	slash := strings.LastIndexByte(rest, '/')
	path, name := "/"+rest[:slash+1], rest[slash+1:]
	if name == "" || len(name) > maxRoleNameLen {
		return a, fmt.Errorf("role ARN %s: role name must be 1-%d characters", quoteShort(s), maxRoleNameLen)
	}
	if len(path) > maxRolePathLen || strings.Contains(path, "//") {
		return a, fmt.Errorf("role ARN %s: invalid role path %s", quoteShort(s), quoteShort(path))
	}
	for _, c := range []byte(name) {
		if !roleNameChar(c) {
			return a, fmt.Errorf("role ARN %s: role name has invalid character %q", quoteShort(s), c)
		}
	}
	for _, c := range []byte(path) {
		if c != '/' && !roleNameChar(c) {
			return a, fmt.Errorf("role ARN %s: role path has invalid character %q", quoteShort(s), c)
		}
	}
	return RoleARN{Partition: partition, AccountID: account, Path: path, Name: name}, nil
}

// validPartition accepts "aws" and hyphenated variants such as aws-cn, aws-us-gov, aws-iso-b.
func validPartition(p string) bool {
	rest, ok := strings.CutPrefix(p, "aws")
	if !ok {
		return false
	}
	for _, seg := range strings.Split(rest, "-")[1:] {
		if seg == "" {
			return false
		}
		for _, c := range []byte(seg) {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return false
			}
		}
	}
	return rest == "" || rest[0] == '-'
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// roleNameChar is IAM's role-name character set: alphanumerics and +=,.@_-
func roleNameChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("+=,.@_-", c) >= 0
}
