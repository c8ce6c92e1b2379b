package irsa

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	SkipContainers    []string // container names left untouched
}

// TokenFile is the path of the token file inside a Linux container.
func (c Config) TokenFile() string { return strings.TrimSuffix(c.MountPath, "/") + "/" + TokenFileName }

// WindowsTokenFile is the token path as a Windows container sees it: C:\var\run\...\token.
func (c Config) WindowsTokenFile() string {
	return `C:` + strings.ReplaceAll(c.TokenFile(), "/", `\`)
}

// Skips reports whether the container is listed in the pod's skip-containers annotation.
func (c Config) Skips(container string) bool { return slices.Contains(c.SkipContainers, container) }

// Outcome says why a pod was, or was not, given credentials. Values are metric labels.
type Outcome string

const (
	Mutated               Outcome = "mutated"
	Unchanged             Outcome = "unchanged" // had a role, but everything was already there
	NoRole                Outcome = "no_role"
	Skipped               Outcome = "skipped"
	MissingServiceAccount Outcome = "missing_service_account"
	InvalidAnnotation     Outcome = "invalid_annotation"
	Excluded              Outcome = "excluded_namespace"
	InternalError         Outcome = "error"
)

// Object is the part of a ServiceAccount or a Pod the configuration reads.
type Object struct {
	Namespace   string
	Name        string
	Annotations map[string]string
	Labels      map[string]string
}

// ConfigFor builds the injection config for a pod from its ServiceAccount's and its own
// annotations. ok is false when nothing must be injected; outcome says why, and warnings
// (admission warnings for the user) explain every annotation that was ignored or adjusted.
// It never returns a role the ServiceAccount does not name.
func ConfigFor(sa, pod Object, d Defaults) (cfg Config, outcome Outcome, warnings []string) {
	p := d.AnnotationPrefix
	if d.SkipsPod(pod.Labels) {
		return Config{}, Skipped, nil
	}
	raw, has := sa.Annotations[Key(p, RoleARNAnnotation)]
	if !has {
		return Config{}, NoRole, nil
	}
	saRef := sa.Namespace + "/" + sa.Name
	arn, err := ParseRoleARN(strings.TrimSpace(raw))
	if err != nil {
		return Config{}, InvalidAnnotation, []string{fmt.Sprintf("serviceaccount %s: annotation %s ignored, no AWS credentials injected: %v", saRef, Key(p, RoleARNAnnotation), err)}
	}
	if len(d.AllowedRoleAccounts) > 0 && !slices.Contains(d.AllowedRoleAccounts, arn.AccountID) {
		return Config{}, InvalidAnnotation, []string{fmt.Sprintf("serviceaccount %s: role %s is in AWS account %s, which this webhook is not allowed to inject (allowed: %s); no AWS credentials injected", saRef, arn, arn.AccountID, strings.Join(d.AllowedRoleAccounts, ","))}
	}
	cfg = Config{
		RoleARN:           arn.String(),
		Audience:          d.TokenAudience,
		ExpirationSeconds: d.TokenExpiration,
		MountPath:         d.TokenMountPath,
		Region:            d.Region,
		STSRegional:       d.STSRegionalEndpoint,
	}
	if v, ok := sa.Annotations[Key(p, AudienceAnnotation)]; ok {
		if err := validAudience(v); err != nil {
			warnings = append(warnings, fmt.Sprintf("serviceaccount %s: annotation %s ignored (%v); using audience %q", saRef, Key(p, AudienceAnnotation), err, cfg.Audience))
		} else {
			cfg.Audience = v
		}
	}
	if v, ok := sa.Annotations[Key(p, STSRegionalEndpointsAnnotation)]; ok {
		switch b, err := strconv.ParseBool(strings.TrimSpace(v)); {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("serviceaccount %s: annotation %s=%s ignored: want \"true\" or \"false\"", saRef, Key(p, STSRegionalEndpointsAnnotation), quoteShort(v)))
		default:
			cfg.STSRegional = b
		}
	}
	// The pod's token-expiration wins over the SA's, which wins over the flag. An
	// unparseable value is ignored (the next source applies); an out-of-range one is clamped.
	for _, src := range []struct {
		what string
		ann  map[string]string
	}{{"pod " + pod.Namespace + "/" + pod.Name, pod.Annotations}, {"serviceaccount " + saRef, sa.Annotations}} {
		v, ok := src.ann[Key(p, TokenExpirationAnnotation)]
		if !ok {
			continue
		}
		secs, warn := parseExpiration(v)
		if warn != "" {
			warnings = append(warnings, fmt.Sprintf("%s: annotation %s %s", src.what, Key(p, TokenExpirationAnnotation), warn))
		}
		if secs > 0 {
			cfg.ExpirationSeconds = secs
			break
		}
	}
	if v, ok := pod.Annotations[Key(p, SkipContainersAnnotation)]; ok {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				cfg.SkipContainers = append(cfg.SkipContainers, name)
			}
		}
	}
	return cfg, Mutated, warnings
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
