package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const podInitCommand = "pod-init"

// initSpec tells `node-agent pod-init` how to become a container process. The agent starts
// it in a fresh mount and UTS namespace (clone flags); pod-init makes the mounts, joins the
// pod's netns, drops privileges and execs the container's argv.
type initSpec struct {
	NetNS    string      `json:"netns,omitempty"` // path under /var/run/netns; empty for hostNetwork
	Hostname string      `json:"hostname"`
	Mounts   []initMount `json:"mounts"`
	UID      int         `json:"uid"`
	GID      int         `json:"gid"`
	Groups   []int       `json:"groups,omitempty"`
	Workdir  string      `json:"workdir,omitempty"`
	Argv     []string    `json:"argv"`
	Env      []string    `json:"env"`
}

type initMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

func podInitMain(args []string) {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: node-agent pod-init SPEC.json")
		os.Exit(2)
	}
	if err := podInit(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent pod-init:", err)
		os.Exit(128)
	}
}

func podInit(specPath string) error {
	// Namespace joins (setns) are per thread: keep everything on this one up to execve.
	runtime.LockOSThread()
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec initSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	if len(spec.Argv) == 0 {
		return fmt.Errorf("empty command")
	}
	// Our mounts must not propagate back to the host's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	// Open every source first: a volume mounted over a host directory (say /work) must not
	// hide the source of a later mount (say the image binary under /work/...).
	sources := make([]string, len(spec.Mounts))
	for i, m := range spec.Mounts {
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		sources[i] = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	for i, m := range spec.Mounts {
		if err := unix.Mount(sources[i], m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("read-only %s: %w", m.Target, err)
			}
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.NetNS != "" {
		fd, err := unix.Open(spec.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open netns: %w", err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", spec.NetNS, err)
		}
		unix.Close(fd)
	}
	workdir := spec.Workdir
	if workdir == "" {
		workdir = "/"
	}
	if err := os.Chdir(workdir); err != nil {
		return fmt.Errorf("chdir %s: %w", workdir, err)
	}
	argv0, err := lookPath(spec.Argv[0], spec.Env)
	if err != nil {
		return err
	}
	groups := spec.Groups
	if groups == nil {
		groups = []int{}
	}
	// syscall's Setgroups/Setgid/Setuid apply to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(spec.GID); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(spec.UID); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return syscall.Exec(argv0, spec.Argv, spec.Env)
}

// lookPath resolves a relative command through the container's PATH, as runc does.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, cmd)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: %w", cmd, exec.ErrNotFound)
}
