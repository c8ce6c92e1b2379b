package awsiam_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

func TestDirSource(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"plain.json":   `{"Version":"2012-10-17"}`,
		"encoded.json": `%7B%22Version%22%3A%222012-10-17%22%7D`,
		"big.json":     strings.Repeat(" ", 64<<10+1),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		dir       string
		arn       string
		want      string
		wantClass error
	}{
		{name: "plain JSON as is", dir: dir, arn: roleARN("plain"), want: files["plain.json"]},
		{name: "URL-encoded as is", dir: dir, arn: roleARN("encoded"), want: files["encoded.json"]},
		{name: "path ignored, name selects the file", dir: dir, arn: roleARN("a/b/plain"), want: files["plain.json"]},
		{name: "missing file", dir: dir, arn: roleARN("missing"), wantClass: awsiam.ErrNotFound},
		{name: "missing directory", dir: filepath.Join(dir, "nope"), arn: roleARN("plain"), wantClass: awsiam.ErrUnavailable},
		{name: "file too large", dir: dir, arn: roleARN("big"), wantClass: awsiam.ErrUnavailable},
		{name: "invalid ARN", dir: dir, arn: "arn:aws:iam::1:role/x", wantClass: awsiam.ErrInvalidARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := awsiam.NewDirSource(tt.dir).TrustPolicy(context.Background(), tt.arn)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("TrustPolicy error = %v, want class %v", err, tt.wantClass)
				}
				if !strings.Contains(err.Error(), `get role "`+tt.arn+`"`) {
					t.Errorf("TrustPolicy error %q does not name the role", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("TrustPolicy: %v", err)
			}
			if got != tt.want {
				t.Errorf("TrustPolicy = %q, want %q", got, tt.want)
			}
		})
	}
}
