package irsa

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
)

// Defaults are the server-wide settings (from flags) that annotations may override.
type Defaults struct {
	AnnotationPrefix    string
	TokenAudience       string
	TokenMountPath      string
	TokenExpiration     int64
	Region              string   // AWS_REGION / AWS_DEFAULT_REGION; empty = not set
	STSRegionalEndpoint bool     // AWS_STS_REGIONAL_ENDPOINTS=regional unless the SA says "false"
	AllowedRoleAccounts []string // when non-empty, roles in other AWS accounts are never injected
	// ComposeAccount, when set (--compose-role-arn), lets a role annotation name a role by
	// its name or "path/name": it is completed with the account it returns. ok is false while
	// that account is not known; such a role is then not injected (decision RoleNotComposed).
	ComposeAccount func() (a Account, ok bool)
}

// NewDefaults returns the defaults the serve and mutate commands start from.
func NewDefaults() Defaults {
	return Defaults{
		AnnotationPrefix: DefaultAnnotationPrefix,
		TokenAudience:    DefaultTokenAudience,
		TokenMountPath:   DefaultTokenMountPath,
		TokenExpiration:  DefaultTokenExpiration,
	}
}

// Validate reports every problem with the defaults at once.
func (d Defaults) Validate() []error {
	var errs []error
	if d.AnnotationPrefix == "" || strings.ContainsAny(d.AnnotationPrefix, "/ \t\n") {
		errs = append(errs, fmt.Errorf("annotation prefix %q must be a non-empty DNS-style prefix without '/' or spaces", d.AnnotationPrefix))
	}
	if err := validAudience(d.TokenAudience); err != nil {
		errs = append(errs, fmt.Errorf("token audience: %w", err))
	}
	if !strings.HasPrefix(d.TokenMountPath, "/") || strings.ContainsAny(d.TokenMountPath, " \t\n:") || strings.Contains(d.TokenMountPath, "..") {
		errs = append(errs, fmt.Errorf("token mount path %q must be an absolute path without spaces, ':' or '..'", d.TokenMountPath))
	}
	if d.TokenExpiration < MinTokenExpiration || d.TokenExpiration > MaxTokenExpiration {
		errs = append(errs, fmt.Errorf("token expiration %d must be within [%d, %d] seconds", d.TokenExpiration, MinTokenExpiration, MaxTokenExpiration))
	}
	if d.Region != "" && !validRegion(d.Region) {
		errs = append(errs, fmt.Errorf("AWS region %q is not a region name such as us-east-1", d.Region))
	}
	for _, a := range d.AllowedRoleAccounts {
		if len(a) != 12 || !allDigits(a) {
			errs = append(errs, fmt.Errorf("allowed role account %q must be a 12-digit AWS account ID", a))
		}
	}
	return errs
}

// SkipsPod reports whether the pod's labels opt it out of the webhook.
func (d Defaults) SkipsPod(labels map[string]string) bool {
	_, skip := labels[Key(d.AnnotationPrefix, SkipPodLabel)]
	return skip
}

// Config is what the mutation needs to inject credentials into one pod.
type Config struct {
	RoleARN           string
	Audience          string
	ExpirationSeconds int64
	MountPath         string
	Region            string
	STSRegional       bool
	SkipContainers    sets.Set[string] // container names left untouched (at most MaxSkipContainers)
}

// TokenFile is the path of the token file inside a Linux container.
func (c Config) TokenFile() string { return strings.TrimSuffix(c.MountPath, "/") + "/" + TokenFileName }

// WindowsTokenFile is the token path as a Windows container sees it: C:\var\run\...\token.
func (c Config) WindowsTokenFile() string {
	return `C:` + strings.ReplaceAll(c.TokenFile(), "/", `\`)
}

// Skips reports whether the container is listed in the pod's skip-containers annotation.
func (c Config) Skips(container string) bool { return c.SkipContainers.Has(container) }

// Decision is what the configuration decides for a pod: inject credentials, or why not.
// Adapters map it to what they report (the pod handler's outcome metric, a command's
// message); it is not a label itself.
type Decision uint8

const (
	// Inject: the ServiceAccount names a valid role that may be injected.
	Inject Decision = iota
	// NoRole: the ServiceAccount has no role annotation.
	NoRole
	// InvalidAnnotation: a role (or skip list) that must not be injected; warnings say why.
	InvalidAnnotation
	// Skipped: the pod carries the skip label.
	Skipped
	// RoleNotComposed: the role is a name to complete (--compose-role-arn) with the
	// webhook's AWS account, which is not known yet; nothing is injected until it is.
	RoleNotComposed
)

func (d Decision) String() string {
	switch d {
	case Inject:
		return "inject"
	case NoRole:
		return "no role"
	case InvalidAnnotation:
		return "invalid annotation"
	case Skipped:
		return "skipped"
	case RoleNotComposed:
		return "role not composed"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Object is the part of a ServiceAccount or a Pod the configuration reads.
type Object struct {
	Namespace   string
	Name        string
	Annotations map[string]string
	Labels      map[string]string
}

// Settings are what a ServiceAccount's annotations mean for IRSA, with the server's
// defaults filled in: the role its pods assume and how their token is made.
type Settings struct {
	// RoleARN is the canonical role ARN; set only when the ServiceAccount names a valid role
	// that may be injected (decision Inject).
	RoleARN string
	// RoleAnnotation is the role annotation as written, trimmed of surrounding whitespace;
	// set whenever the annotation exists, for messages about an invalid one.
	RoleAnnotation    string
	Audience          string
	ExpirationSeconds int64
	STSRegional       bool
	Region            string
}

// ForServiceAccount is the one reading of a ServiceAccount's IRSA annotations: the pod
// path (ConfigFor), the trust check and every command use it, so a role or audience the
// trust check evaluates is exactly the one pods get. decision is NoRole (no role
// annotation), InvalidAnnotation (a role that must not be injected; warnings say why),
// RoleNotComposed (a role name to complete with an account not known yet) or Inject
// (s.RoleARN is to be injected). warnings explain every annotation that was
// ignored or adjusted; they name the ServiceAccount.
func ForServiceAccount(sa Object, d Defaults) (s Settings, decision Decision, warnings []string) {
	p := d.AnnotationPrefix
	raw, has := sa.Annotations[Key(p, RoleARNAnnotation)]
	if !has {
		return Settings{}, NoRole, nil
	}
	saRef := sa.Namespace + "/" + sa.Name
	s = Settings{
		RoleAnnotation:    strings.TrimSpace(raw),
		Audience:          d.TokenAudience,
		ExpirationSeconds: d.TokenExpiration,
		Region:            d.Region,
		STSRegional:       d.STSRegionalEndpoint,
	}
	value := s.RoleAnnotation
	if d.ComposeAccount != nil && IsRoleName(value) {
		a, ok := d.ComposeAccount()
		if !ok {
			return s, RoleNotComposed, []string{fmt.Sprintf("serviceaccount %s: role %s is a role name, to be completed with the webhook's AWS account, which is not known yet (STS GetCallerIdentity is retried); no AWS credentials injected", saRef, quoteShort(value))}
		}
		value = ComposeRoleARN(value, a)
	}
	arn, err := ParseRoleARN(value)
	if err != nil {
		return s, InvalidAnnotation, []string{fmt.Sprintf("serviceaccount %s: annotation %s ignored, no AWS credentials injected: %v", saRef, Key(p, RoleARNAnnotation), err)}
	}
	if len(d.AllowedRoleAccounts) > 0 && !slices.Contains(d.AllowedRoleAccounts, arn.AccountID) {
		return s, InvalidAnnotation, []string{fmt.Sprintf("serviceaccount %s: role %s is in AWS account %s, which this webhook is not allowed to inject (allowed: %s); no AWS credentials injected", saRef, arn, arn.AccountID, strings.Join(d.AllowedRoleAccounts, ","))}
	}
	s.RoleARN = arn.String()
	if v, ok := sa.Annotations[Key(p, AudienceAnnotation)]; ok {
		if err := validAudience(v); err != nil {
			warnings = append(warnings, fmt.Sprintf("serviceaccount %s: annotation %s ignored (%v); using audience %q", saRef, Key(p, AudienceAnnotation), err, s.Audience))
		} else {
			s.Audience = v
		}
	}
	if v, ok := sa.Annotations[Key(p, STSRegionalEndpointsAnnotation)]; ok {
		switch b, err := strconv.ParseBool(strings.TrimSpace(v)); {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("serviceaccount %s: annotation %s=%s ignored: want \"true\" or \"false\"", saRef, Key(p, STSRegionalEndpointsAnnotation), quoteShort(v)))
		default:
			s.STSRegional = b
		}
	}
	// The SA's token-expiration wins over the flag. An unparseable value is ignored; an
	// out-of-range one is clamped.
	if v, ok := sa.Annotations[Key(p, TokenExpirationAnnotation)]; ok {
		secs, warn := parseExpiration(v)
		if warn != "" {
			warnings = append(warnings, fmt.Sprintf("serviceaccount %s: annotation %s %s", saRef, Key(p, TokenExpirationAnnotation), warn))
		}
		if secs > 0 {
			s.ExpirationSeconds = secs
		}
	}
	return s, Inject, warnings
}

// ConfigFor builds the injection config for a pod: its ServiceAccount's settings
// (ForServiceAccount), then what the pod's own annotations change (token-expiration,
// skip-containers). decision is Inject when credentials are to be injected, else it says
// why not; warnings (admission warnings for the user) explain every annotation that was
// ignored or adjusted. It never returns a role the ServiceAccount does not name.
func ConfigFor(sa, pod Object, d Defaults) (cfg Config, decision Decision, warnings []string) {
	p := d.AnnotationPrefix
	if d.SkipsPod(pod.Labels) {
		return Config{}, Skipped, nil
	}
	s, decision, warnings := ForServiceAccount(sa, d)
	if decision != Inject {
		return Config{}, decision, warnings
	}
	cfg = Config{
		RoleARN:           s.RoleARN,
		Audience:          s.Audience,
		ExpirationSeconds: s.ExpirationSeconds,
		MountPath:         d.TokenMountPath,
		Region:            s.Region,
		STSRegional:       s.STSRegional,
	}
	// The pod's token-expiration wins over the SA's.
	if v, ok := pod.Annotations[Key(p, TokenExpirationAnnotation)]; ok {
		secs, warn := parseExpiration(v)
		if warn != "" {
			warnings = append(warnings, fmt.Sprintf("pod %s/%s: annotation %s %s", pod.Namespace, pod.Name, Key(p, TokenExpirationAnnotation), warn))
		}
		if secs > 0 {
			cfg.ExpirationSeconds = secs
		}
	}
	if v, ok := pod.Annotations[Key(p, SkipContainersAnnotation)]; ok {
		// Count before splitting: a list of a million names is refused without building it.
		if n := strings.Count(v, ",") + 1; n > MaxSkipContainers {
			return Config{}, InvalidAnnotation, append(warnings, fmt.Sprintf("pod %s/%s: annotation %s lists %d entries, more than the %d a pod can have containers; no AWS credentials injected",
				pod.Namespace, pod.Name, Key(p, SkipContainersAnnotation), n, MaxSkipContainers))
		}
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if cfg.SkipContainers == nil {
					cfg.SkipContainers = sets.New[string]()
				}
				cfg.SkipContainers.Insert(name)
			}
		}
	}
	return cfg, Inject, warnings
}

// parseExpiration returns the expiration in seconds (0 = ignore this value) and a warning
// when the value was ignored or clamped. Only plain base-10 integers are accepted: "1e9"
// and "0x10" are rejected rather than guessed at.
func parseExpiration(v string) (int64, string) {
	secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("value %s ignored: not a whole number of seconds", quoteShort(v))
	}
	switch {
	case secs < MinTokenExpiration:
		return MinTokenExpiration, fmt.Sprintf("value %d raised to the minimum of %d seconds", secs, MinTokenExpiration)
	case secs > MaxTokenExpiration:
		return MaxTokenExpiration, fmt.Sprintf("value %d lowered to the maximum of %d seconds", secs, MaxTokenExpiration)
	}
	return secs, ""
}

func validAudience(a string) error {
	if a == "" {
		return fmt.Errorf("audience is empty")
	}
	if len(a) > 256 {
		return fmt.Errorf("audience is longer than 256 characters")
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("audience %s contains a space, quote, control or non-ASCII character", quoteShort(a))
		}
	}
	return nil
}

// validRegion accepts region names such as us-east-1, cn-north-1, us-gov-west-1, eu-isoe-west-1.
func validRegion(r string) bool {
	if len(r) > 32 || strings.Count(r, "-") < 2 {
		return false
	}
	for _, c := range []byte(r) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return r[len(r)-1] >= '0' && r[len(r)-1] <= '9'
}

// quoteShort quotes a user-supplied value for a message, cut to a readable length so a
// 100 KB annotation does not become a 100 KB warning.
func quoteShort(v string) string {
	const max = 64
	if len(v) > max {
		return strconv.Quote(v[:max]) + "…"
	}
	return strconv.Quote(v)
}
