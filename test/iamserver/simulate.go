package iamserver

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// actSimulatePrincipalPolicy is IAM's policy simulator for an existing principal.
const actSimulatePrincipalPolicy = "SimulatePrincipalPolicy"

// Bounds of a simulation request (IAM's own: ActionNames and ResourceArns are unbounded in
// the reference, but each answer is paged; this server answers everything at once).
const (
	maxSimulatedActions   = 100
	maxSimulatedResources = 100
)

// IAM's decisions (PolicyEvaluationDecisionType).
const (
	DecisionAllowed      = "allowed"
	DecisionExplicitDeny = "explicitDeny"
	DecisionImplicitDeny = "implicitDeny"
)

// PutRolePolicy sets (or replaces) the inline permissions policy name of the role called
// roleName, as IAM's PutRolePolicy would; SimulatePrincipalPolicy evaluates these policies.
// An empty doc removes the policy. It panics on a document this evaluator cannot read:
// that is a bug in the test.
func (s *Server) PutRolePolicy(roleName, name, doc string) {
	if doc != "" {
		if _, err := parsePermissions(doc); err != nil {
			panic("iamserver.PutRolePolicy: " + err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(roleName)
	if s.rolePolicies == nil {
		s.rolePolicies = map[string]map[string]string{}
	}
	if s.rolePolicies[key] == nil {
		s.rolePolicies[key] = map[string]string{}
	}
	if doc == "" {
		delete(s.rolePolicies[key], name)
		return
	}
	s.rolePolicies[key][name] = doc
}

type permissionStatement struct {
	Effect      string          `json:"Effect"`
	Action      stringOrList    `json:"Action"`
	NotAction   stringOrList    `json:"NotAction"`
	Resource    stringOrList    `json:"Resource"`
	NotResource stringOrList    `json:"NotResource"`
	Condition   json.RawMessage `json:"Condition"`
}

type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*l = many
	return nil
}

func parsePermissions(doc string) ([]permissionStatement, error) {
	var p struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return nil, fmt.Errorf("policy is not JSON: %w", err)
	}
	var list []permissionStatement
	if err := json.Unmarshal(p.Statement, &list); err != nil {
		var one permissionStatement
		if err := json.Unmarshal(p.Statement, &one); err != nil {
			return nil, fmt.Errorf("statement: %w", err)
		}
		list = []permissionStatement{one}
	}
	for i, st := range list {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return nil, fmt.Errorf("statement %d: Effect %q must be Allow or Deny", i, st.Effect)
		}
	}
	return list, nil
}

// evaluatePermissions decides action on resource under the role's inline policies the way
// IAM does for identity policies alone: an explicit Deny wins, else an Allow, else the
// implicit deny. Limits, documented because tests must not rely on more: only inline role
// policies (no managed policies, permissions boundaries, SCPs, session or resource
// policies); a statement with a Condition never matches (as in IAM's simulator when the
// request gives no context values for its keys); policy variables are not substituted.
// It returns the decision and the names of the policies whose statements decided it.
func evaluatePermissions(policies map[string]string, action, resource string) (string, []string) {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	sort.Strings(names)
	var allowedBy, deniedBy []string
	for _, n := range names {
		sts, err := parsePermissions(policies[n])
		if err != nil {
			continue
		}
		for _, st := range sts {
			if len(st.Condition) > 0 && string(st.Condition) != "null" || !statementMatches(st, action, resource) {
				continue
			}
			if st.Effect == "Deny" {
				deniedBy = append(deniedBy, n)
			} else {
				allowedBy = append(allowedBy, n)
			}
		}
	}
	switch {
	case len(deniedBy) > 0:
		return DecisionExplicitDeny, slices.Compact(deniedBy)
	case len(allowedBy) > 0:
		return DecisionAllowed, slices.Compact(allowedBy)
	}
	return DecisionImplicitDeny, nil
}

func statementMatches(st permissionStatement, action, resource string) bool {
	actionOK := anyMatch(st.Action, action, true)
	if len(st.NotAction) > 0 {
		actionOK = !anyMatch(st.NotAction, action, true)
	}
	resourceOK := anyMatch(st.Resource, resource, false)
	if len(st.NotResource) > 0 {
		resourceOK = !anyMatch(st.NotResource, resource, false)
	}
	return actionOK && resourceOK
}

func anyMatch(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch matches IAM's wildcards: '*' any run of characters (including '/' and ':',
// which is why path.Match does not fit), '?' any one character. Iterative with
// backtracking to the last '*', so it is linear in practice and never exponential.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

type xmlStatement struct {
	SourcePolicyID   string `xml:"SourcePolicyId"`
	SourcePolicyType string `xml:"SourcePolicyType"`
}

type xmlEvaluationResult struct {
	EvalActionName    string         `xml:"EvalActionName"`
	EvalResourceName  string         `xml:"EvalResourceName"`
	EvalDecision      string         `xml:"EvalDecision"`
	MatchedStatements []xmlStatement `xml:"MatchedStatements>member"`
	MissingContext    []string       `xml:"MissingContextValues>member"`
}

type simulateResponse struct {
	XMLName   xml.Name              `xml:"SimulatePrincipalPolicyResponse"`
	Xmlns     string                `xml:"xmlns,attr"`
	Results   []xmlEvaluationResult `xml:"SimulatePrincipalPolicyResult>EvaluationResults>member"`
	Truncated bool                  `xml:"SimulatePrincipalPolicyResult>IsTruncated"`
	Metadata  responseMetadata      `xml:"ResponseMetadata"`
}

// simulatePrincipalPolicy answers one EvaluationResult per action and resource (ResourceArns
// defaults to "*"), for a role of this server named by PolicySourceArn.
func (s *Server) simulatePrincipalPolicy(w http.ResponseWriter, form url.Values) *apiError {
	if code := s.takeFault(); code != "" {
		return codeError(code, "")
	}
	source := form.Get("PolicySourceArn")
	actions := members(form, "ActionNames", maxSimulatedActions)
	resources := members(form, "ResourceArns", maxSimulatedResources)
	var problems []string
	if source == "" {
		problems = append(problems, nullProblem("policySourceArn"))
	}
	if len(actions) == 0 {
		problems = append(problems, nullProblem("actionNames"))
	}
	if len(actions) > maxSimulatedActions || len(resources) > maxSimulatedResources {
		problems = append(problems, fmt.Sprintf("at most %d action names and %d resource ARNs", maxSimulatedActions, maxSimulatedResources))
	}
	if len(problems) > 0 {
		return validationErrors(problems)
	}
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	a, err := irsa.ParseRoleARN(source)
	if err != nil {
		return codeError(CodeInvalidInput, fmt.Sprintf("Invalid ARN %s: only roles can be simulated here: %v", source, err))
	}
	s.mu.Lock()
	_, found := s.roles[strings.ToLower(a.Name)]
	policies := map[string]string{}
	for n, d := range s.rolePolicies[strings.ToLower(a.Name)] {
		policies[n] = d
	}
	s.mu.Unlock()
	if !found {
		return codeError(CodeNoSuchEntity, fmt.Sprintf("The role with name %s cannot be found.", a.Name))
	}
	id := newRequestID()
	resp := simulateResponse{Xmlns: Namespace, Metadata: responseMetadata{RequestID: id}}
	for _, act := range actions {
		for _, res := range resources {
			decision, by := evaluatePermissions(policies, act, res)
			r := xmlEvaluationResult{EvalActionName: act, EvalResourceName: res, EvalDecision: decision}
			for _, n := range by {
				r.MatchedStatements = append(r.MatchedStatements, xmlStatement{SourcePolicyID: n, SourcePolicyType: "role"})
			}
			resp.Results = append(resp.Results, r)
		}
	}
	writeXML(w, http.StatusOK, id, resp)
	return nil
}
