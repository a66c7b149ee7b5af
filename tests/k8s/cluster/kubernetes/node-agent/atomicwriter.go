package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// fileProjection is one file of a configMap, secret, downwardAPI or projected volume.
type fileProjection struct {
	data []byte
	mode os.FileMode
}

const dataDirName = "..data"

// writeAtomically lays out a volume as the kubelet's AtomicWriter does: the files live in
// a timestamped "..<time>" directory, "..data" links to it, and each top-level entry is a
// link through "..data". An update writes a new directory and swaps "..data" with one
// rename, so a reader never sees half of an update. Unchanged content writes nothing.
// It reports whether it wrote.
func writeAtomically(dir string, payload map[string]fileProjection, now time.Time) (bool, error) {
	for p := range payload {
		if err := validatePayloadPath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	oldTsName, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if oldTsName != "" && payloadMatches(filepath.Join(dir, oldTsName), payload) {
		return false, nil
	}
	tsDir, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return false, err
		}
		if err := os.Chmod(full, f.mode); err != nil { // WriteFile's mode is masked by umask
			return false, err
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		return false, err
	}
	wanted := map[string]bool{}
	for p := range payload {
		wanted[strings.Split(p, "/")[0]] = true
	}
	for top := range wanted {
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDirName, top) {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join(dataDirName, top), link); err != nil {
			return false, err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataDirName || name == filepath.Base(tsDir):
		case strings.HasPrefix(name, ".."):
			_ = os.RemoveAll(filepath.Join(dir, name)) // previous timestamped dirs
		case !wanted[name] && e.Type()&os.ModeSymlink != 0:
			_ = os.Remove(filepath.Join(dir, name)) // a key that went away
		}
	}
	return true, nil
}

func validatePayloadPath(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid volume file path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return fmt.Errorf("invalid volume file path %q", p)
		}
	}
	return nil
}

// payloadMatches reports whether tsDir holds exactly the payload's files, contents and modes.
func payloadMatches(tsDir string, payload map[string]fileProjection) bool {
	var found []string
	err := filepath.Walk(tsDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tsDir, path)
		found = append(found, rel)
		return nil
	})
	if err != nil || len(found) != len(payload) {
		return false
	}
	sort.Strings(found)
	for _, rel := range found {
		f, ok := payload[rel]
		if !ok {
			return false
		}
		full := filepath.Join(tsDir, rel)
		st, err := os.Stat(full)
		if err != nil || st.Mode().Perm()|readBits != f.mode.Perm()|readBits {
			return false
		}
		data, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(data, f.data) {
			return false
		}
	}
	return true
}

// readBits are the bits fsGroup ownership may add after writing (kubelet's roMask), so
// they do not count as a change.
const readBits os.FileMode = 0o440
