// Package irsa holds what IAM Roles for Service Accounts means for a pod: the annotation
// keys, the defaults and bounds, and Config, built from a ServiceAccount, a Pod and the
// server's defaults. Everything here is pure: values in, values out.
package irsa

// Defaults shared by the serve/mutate flags, the Helm chart tests and the docs.
const (
	// DefaultAnnotationPrefix is the prefix of every annotation and label the webhook reads.
	DefaultAnnotationPrefix = "eks.amazonaws.com"
	// DefaultTokenAudience is the audience of the projected token; STS expects it by default.
	DefaultTokenAudience = "sts.amazonaws.com"
	// DefaultTokenMountPath is where the token volume is mounted in every container.
	DefaultTokenMountPath = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	// DefaultTokenExpiration is the projected token's lifetime in seconds (24h).
	DefaultTokenExpiration int64 = 86400
	// MinTokenExpiration is the kubelet's lower bound for expirationSeconds (10 minutes).
	MinTokenExpiration int64 = 600
	// MaxTokenExpiration is the upper bound this webhook allows (24 hours).
	MaxTokenExpiration int64 = 86400
)

// Bounds on what one pod may make the webhook do, checked before any work per container or
// per name: mutating admission runs before validation, so a tenant can send pods etcd would
// refuse (thousands of containers, an annotation of megabytes) only to make the webhook
// spend CPU and memory on them.
const (
	// MaxContainers is the most containers (init and regular) a pod may have for the webhook
	// to inject credentials; a pod with more is admitted unchanged with a warning. Real pods
	// have a handful (an application, a few sidecars and init containers); the largest seen
	// in practice have a few dozen. 250 leaves an order of magnitude of headroom above that,
	// while keeping the patch (about 500 bytes per container) and the work per pod bounded:
	// 5,000 containers would already make a 1.6 MB patch.
	MaxContainers = 250
	// MaxSkipContainers is the most entries the skip-containers annotation may list: a pod
	// has at most MaxContainers containers, so a longer list names containers that cannot
	// exist. Such a list is not trusted in part: the pod gets no credentials at all (with a
	// warning), since ignoring the names past the cap, or the whole annotation, could give
	// credentials to a container its author asked to leave out.
	MaxSkipContainers = MaxContainers
)

// Fixed names of what the webhook adds to a pod.
const (
	// VolumeName is the projected service-account-token volume the webhook adds.
	VolumeName = "aws-iam-token"
	// TokenFileName is the file inside the volume holding the token.
	TokenFileName = "token"
)

// Annotation and label names, relative to the prefix ("<prefix>/<name>").
const (
	// RoleARNAnnotation (ServiceAccount): the IAM role the pods of this SA assume.
	RoleARNAnnotation = "role-arn"
	// AudienceAnnotation (ServiceAccount): the token audience, if not the default.
	AudienceAnnotation = "audience"
	// STSRegionalEndpointsAnnotation (ServiceAccount): "true" or "false", overrides the flag.
	STSRegionalEndpointsAnnotation = "sts-regional-endpoints"
	// TokenExpirationAnnotation (ServiceAccount or Pod; the Pod's wins): seconds.
	TokenExpirationAnnotation = "token-expiration"
	// SkipContainersAnnotation (Pod): comma-separated container names left untouched.
	SkipContainersAnnotation = "skip-containers"
	// SkipPodLabel (Pod label): when present, the pod is left untouched.
	SkipPodLabel = "skip-pod-identity-webhook"
)

// Environment variables the webhook sets.
const (
	EnvRoleARN              = "AWS_ROLE_ARN"
	EnvWebIdentityTokenFile = "AWS_WEB_IDENTITY_TOKEN_FILE"
	EnvRegion               = "AWS_REGION"
	EnvDefaultRegion        = "AWS_DEFAULT_REGION"
	EnvSTSRegionalEndpoints = "AWS_STS_REGIONAL_ENDPOINTS"
)

// Key joins the prefix and a name into an annotation or label key.
func Key(prefix, name string) string { return prefix + "/" + name }
