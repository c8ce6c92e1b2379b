package trustpolicy

// Action is the STS action a pod's web identity token is used for.
const Action = "sts:AssumeRoleWithWebIdentity"

const actionLower = "sts:assumerolewithwebidentity"

// SubjectPrefix starts the sub claim of every service-account token.
const SubjectPrefix = "system:serviceaccount:"

// Result is the outcome of Evaluate. The zero value is Undetermined.
type Result uint8

// Results.
const (
	Undetermined Result = iota // the checker cannot tell: something the answer depends on is unknown
	Trusted                    // the trust policy lets the service account assume the role
	NotTrusted                 // it does not: STS would refuse the call
)

func (r Result) String() string {
	switch r {
	case Trusted:
		return "Trusted"
	case NotTrusted:
		return "NotTrusted"
	}
	return "Undetermined"
}

// Severity ranks a finding.
type Severity uint8

// Severities.
const (
	Info    Severity = iota // what grants trust
	Warning                 // broad, unknown or mis-targeted, but not on its own a refusal
	Error                   // why the role is not trusted, or why the request cannot be checked
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "info"
}

// Finding is one observation about the policy and the request. Claim and Outcome say what
// it means for the request alone; Message is the full text for whoever may read the
// policy (it quotes its principals and condition values).
type Finding struct {
	Severity  Severity
	Statement int     // index of the statement it is about, -1 for the policy or the request
	Claim     Claim   // the request's claim it is about
	Outcome   Outcome // what it says about that claim
	Message   string  // starts with "statement N (Sid ...): " when Statement >= 0
}

func (f Finding) String() string { return f.Severity.String() + ": " + f.Message }

// Verdict is Evaluate's answer.
type Verdict struct {
	Result   Result
	Findings []Finding // in statement order
}
