package irsa

import (
	"strings"
	"testing"
)

func TestParseRoleARN(t *testing.T) {
	tests := []struct {
		in      string
		want    RoleARN
		wantErr string
	}{
		{in: "arn:aws:iam::123456789012:role/S3WriterRole", want: RoleARN{"aws", "123456789012", "/", "S3WriterRole"}},
		{in: "arn:aws-cn:iam::123456789012:role/a/b/Reader", want: RoleARN{"aws-cn", "123456789012", "/a/b/", "Reader"}},
		{in: "arn:aws-us-gov:iam::123456789012:role/x+=,.@_-y", want: RoleARN{"aws-us-gov", "123456789012", "/", "x+=,.@_-y"}},
		{in: "arn:aws-iso-b:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123", want: RoleARN{"aws-iso-b", "123456789012", "/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_Admin_0123"}},
		{in: "", wantErr: "empty"},
		{in: "arn:aws:iam::123456789012:role/S3WriterRole\n", wantErr: "control"},
		{in: " arn:aws:iam::123456789012:role/S3WriterRole", wantErr: "space"},
		{in: "arn:aws:iam::123456789012:role/Ré", wantErr: "non-ASCII"},
		{in: `arn:aws:iam::123456789012:role/"quoted"`, wantErr: "invalid character"},
		{in: "arn:aws:iam::123456789012:user/bob", wantErr: "does not name a role"},
		{in: "arn:aws:sts::123456789012:role/x", wantErr: "want iam"},
		{in: "arn:aws:iam:us-east-1:123456789012:role/x", wantErr: "region"},
		{in: "arn:aws:iam::12345678901:role/x", wantErr: "12 digits"},
		{in: "arn:aws:iam::12345678901a:role/x", wantErr: "12 digits"},
		{in: "arn:gcp:iam::123456789012:role/x", wantErr: "partition"},
		{in: "arn:aws-:iam::123456789012:role/x", wantErr: "partition"},
		{in: "arn:aws:iam::123456789012:role/", wantErr: "1-64"},
		{in: "arn:aws:iam::123456789012:role/" + strings.Repeat("a", 65), wantErr: "1-64"},
		{in: "arn:aws:iam::123456789012:role/a//b", wantErr: "path"},
		{in: "S3WriterRole", wantErr: "not of the form"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRoleARN(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestDefaultsValidateReportsAll(t *testing.T) {
	d := Defaults{AnnotationPrefix: "a/b", TokenAudience: "", TokenMountPath: "relative", TokenExpiration: 10, Region: "Mars", AllowedRoleAccounts: []string{"1"}}
	errs := d.Validate()
	if len(errs) != 6 {
		t.Fatalf("got %d problems, want 6: %v", len(errs), errs)
	}
	if errs := NewDefaults().Validate(); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
}

func TestWindowsTokenFile(t *testing.T) {
	c := Config{MountPath: DefaultTokenMountPath}
	if got, want := c.WindowsTokenFile(), `C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
