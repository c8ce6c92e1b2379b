package trustpolicy

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMinimal(t *testing.T) {
	cases := []struct {
		name string
		req  func(*Request)
	}{
		{name: "default"},
		{name: "GovCloud role with a path", req: func(r *Request) {
			r.RoleARN = "arn:aws-us-gov:iam::111122223333:role/team/s3-writer"
			r.IssuerURL = "https://oidc.eks.us-gov-west-1.amazonaws.com/id/ABCDEF0123456789/"
		}},
		{name: "China partition", req: func(r *Request) {
			r.RoleARN = "arn:aws-cn:iam::111122223333:role/s3-writer"
			r.IssuerURL = "https://oidc.eks.cn-north-1.amazonaws.com.cn/id/ABCDEF0123456789"
		}},
		{name: "self-managed issuer and custom audience", req: func(r *Request) {
			r.IssuerURL = "https://s3.us-east-1.amazonaws.com/my-cluster-oidc"
			r.Audience = "irsa.example.com"
			r.Namespace, r.ServiceAccount = "kube-system", "ebs-csi-controller-sa"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			doc, err := Minimal(r)
			if err != nil {
				t.Fatalf("Minimal: %v", err)
			}
			if !json.Valid([]byte(doc)) || !strings.HasPrefix(doc, "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n") || strings.HasSuffix(doc, "\n") {
				t.Errorf("not two-space indented JSON without a trailing newline:\n%s", doc)
			}
			p := mustParse(t, doc)
			v := Evaluate(p, r)
			checkVerdict(t, v, Trusted, nil)
			if hasSeverity(v, Warning) {
				t.Errorf("minimal policy has warnings:\n%s", dumpFindings(v))
			}
			if len(p.Statements) != 1 || len(p.Statements[0].Conditions) != 2 {
				t.Errorf("want one statement with two conditions, got %+v", p.Statements)
			}
			// It trusts nothing else: another service account, namespace, audience or cluster.
			for _, other := range []func(*Request){
				func(r *Request) { r.ServiceAccount += "x" },
				func(r *Request) { r.Namespace += "x" },
				func(r *Request) { r.Audience += "x" },
				func(r *Request) { r.IssuerURL += "x" },
			} {
				o := r
				other(&o)
				checkVerdict(t, Evaluate(p, o), NotTrusted, nil)
			}
		})
	}
}

func TestMinimalGolden(t *testing.T) {
	doc, err := Minimal(testRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := fill(`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {
        "Federated": "PROVIDER"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "ISSUER:aud": "sts.amazonaws.com",
          "ISSUER:sub": "system:serviceaccount:production:s3-writer"
        }
      }
    }
  ]
}`)
	if doc != want {
		t.Errorf("Minimal:\n%s\nwant:\n%s", doc, want)
	}
}

func TestMinimalErrors(t *testing.T) {
	cases := []struct {
		name string
		req  Request
		want []string
	}{
		{name: "no audience", req: func() Request { r := testRequest(); r.Audience = ""; return r }(), want: []string{"audience is empty"}},
		{name: "everything missing", req: Request{}, want: []string{"role ARN is empty", "issuer URL is empty", "namespace is empty", "service account name is empty", "audience is empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Minimal(tc.req)
			if err == nil {
				t.Fatal("Minimal succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
