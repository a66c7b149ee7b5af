package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// hostResources tracks what the agent creates on the shared host filesystem (mount points
// for binaries and volumes that did not exist) and its pid files, so a later run or the end
// of this one removes them.
type hostResources struct {
	stateDir string

	mu      sync.Mutex
	created map[string]int // mount point path -> pods using it
	order   []string       // creation order, parents before children
}

func newHostResources(stateDir string) *hostResources {
	return &hostResources{stateDir: stateDir, created: map[string]int{}}
}

func (h *hostResources) recordFile() string { return filepath.Join(h.stateDir, "mountpoints") }

// ensureMountPoint creates a missing mount point (a directory, or an empty file when
// isFile) and every missing parent, and counts one more user of each path it made.
// It returns the paths the caller must release.
func (h *hostResources) ensureMountPoint(path string, isFile bool) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var made []string
	// Parents first.
	parts := strings.Split(filepath.Clean(path), "/")
	cur := "/"
	for i, p := range parts {
		if p == "" {
			continue
		}
		cur = filepath.Join(cur, p)
		last := i == len(parts)-1
		if _, err := os.Lstat(cur); err == nil {
			if _, ours := h.created[cur]; ours {
				h.created[cur]++
				made = append(made, cur)
			}
			continue
		}
		var err error
		if last && isFile {
			var f *os.File
			if f, err = os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755); err == nil {
				f.Close()
			}
		} else {
			err = os.Mkdir(cur, 0o755)
		}
		if err != nil {
			h.releaseLocked(made)
			return nil, fmt.Errorf("mount point %s: %w", cur, err)
		}
		h.created[cur] = 1
		h.order = append(h.order, cur)
		made = append(made, cur)
		h.appendRecord(cur)
	}
	return made, nil
}

func (h *hostResources) appendRecord(path string) {
	f, err := os.OpenFile(h.recordFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintln(f, path)
	f.Close()
}

// release drops one use of each path and removes the ones nobody uses any more.
func (h *hostResources) release(paths []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked(paths)
}

func (h *hostResources) releaseLocked(paths []string) {
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		if h.created[p]--; h.created[p] <= 0 {
			delete(h.created, p)
			removeIfEmpty(p)
		}
	}
}

func (h *hostResources) removeAllMountPoints() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.order) - 1; i >= 0; i-- {
		removeIfEmpty(h.order[i])
	}
	h.created = map[string]int{}
	h.order = nil
	_ = os.Remove(h.recordFile())
}

// removeIfEmpty removes an empty directory or an empty regular file, nothing else.
func removeIfEmpty(p string) {
	st, err := os.Lstat(p)
	if err != nil {
		return
	}
	if st.Mode().IsRegular() && st.Size() != 0 {
		return
	}
	_ = os.Remove(p) // fails on a non-empty directory, as wanted
}

// cleanLeftovers kills the processes of a previous run (by pid file, checking the start
// time so a reused pid is left alone), removes its pod dirs and the mount points it
// created. (cleanNetworkLeftovers does the netns and veths.)
func (h *hostResources) cleanLeftovers() {
	podsDir := filepath.Join(h.stateDir, "pods")
	pidFiles, _ := filepath.Glob(filepath.Join(podsDir, "*", "*.pid"))
	var killed []int
	for _, f := range pidFiles {
		if pid, ok := readPidFile(f); ok {
			klog.Infof("killing leftover process %d (%s)", pid, f)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
		}
	}
	for _, pid := range killed {
		for i := 0; i < 50 && processAlive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	entries, _ := os.ReadDir(podsDir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(podsDir, e.Name()))
	}
	if data, err := os.ReadFile(h.recordFile()); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if lines[i] != "" {
				removeIfEmpty(lines[i])
			}
		}
		_ = os.Remove(h.recordFile())
	}
}

// processStartTime is field 22 of /proc/<pid>/stat (clock ticks since boot).
func processStartTime(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(data)
	// The command name may hold spaces; fields resume after the last ')'.
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndex(string(data), ")")
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(string(data[i+1:])), "Z")
}

func writePidFile(path string, pid int) error {
	start, _ := processStartTime(pid)
	return writeFileAtomic(path, []byte(fmt.Sprintf("%d %s\n", pid, start)), 0o644)
}

// readPidFile returns the pid when that process still runs with the recorded start time.
func readPidFile(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return 0, false
	}
	start, ok := processStartTime(pid)
	return pid, ok && start == f[1]
}
