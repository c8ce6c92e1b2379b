package certs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(path, []byte(content), 0o640); err != nil {
			t.Fatalf("writeFileAtomic: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the directory, want 1", len(entries))
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err != nil {
		t.Errorf("write into a missing directory = %v, want it created", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "file", "f"), []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), "file") {
		t.Errorf("write below a file = %v, want an error naming it", err)
	}
}
