package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
)

// pairFiles writes the serving pair to files, for a file-based reader such as
// controller-runtime's certwatcher.
type pairFiles struct {
	certFile, keyFile string
	log               logr.Logger
}

// write writes each file only when its content changed. The key goes first: a reader that sees
// the new key with the old certificate fails to load the pair and keeps its previous one until
// the certificate follows.
func (f pairFiles) write(cert, key []byte) error {
	var written []string
	for _, file := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{{f.keyFile, key, 0o600}, {f.certFile, cert, 0o644}} {
		if old, err := os.ReadFile(file.path); err == nil && bytes.Equal(old, file.data) {
			continue
		}
		if err := writeFileAtomic(file.path, file.data, file.perm); err != nil {
			return err
		}
		written = append(written, file.path)
	}
	if len(written) > 0 {
		f.log.Info("serving certificate files written", "files", written)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path and renames it over path, so
// that a reader sees the old or the new content, never a partial one. (os.WriteFile truncates
// in place; no listed library does this.)
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails harmlessly after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
