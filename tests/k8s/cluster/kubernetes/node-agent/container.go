package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// containerRunner runs one container of a pod: image resolution, start, exit, restart with
// back-off, probes and the graceful stop.
type containerRunner struct {
	w      *podWorker
	spec   *v1.Container
	isInit bool
	ref    *v1.ObjectReference

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop ended (or was never to run)

	mu          sync.Mutex
	loopClaimed bool // loop() ran or stop() ruled it out
	rec         containerRecord
	forGood     bool // ended and will not restart
	cmd         *exec.Cmd
	exited      chan struct{}
	pid         int
	env         []string
	uid, gid    int64
	workdir     string
	mountPoints []string
	restarts    *backoff
	pulls       *backoff
}

func newContainerRunner(w *podWorker, spec *v1.Container, isInit bool) *containerRunner {
	ctx, cancel := context.WithCancel(context.Background())
	field := fmt.Sprintf("spec.containers{%s}", spec.Name)
	if isInit {
		field = fmt.Sprintf("spec.initContainers{%s}", spec.Name)
	}
	ref := w.podRef()
	ref.FieldPath = field
	return &containerRunner{
		w: w, spec: spec, isInit: isInit, ref: ref,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		rec: containerRecord{name: spec.Name, image: spec.Image, started: boolPtr(false),
			state: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
		restarts: newBackoff(),
		pulls:    newBackoff(),
	}
}

// seedFromStatus continues the restart count of a previous agent run.
func (r *containerRunner) seedFromStatus(statuses []v1.ContainerStatus) {
	for _, s := range statuses {
		if s.Name == r.spec.Name && s.ContainerID != "" {
			r.mu.Lock()
			r.rec.restartCount = s.RestartCount + 1
			if s.State.Terminated != nil {
				r.rec.lastState = s.State
			} else {
				r.rec.lastState = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: 137, Reason: "Unknown", ContainerID: s.ContainerID,
					Message: "the node agent restarted"}}
			}
			r.mu.Unlock()
		}
	}
}

func (r *containerRunner) record() containerRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec
	if rec.started != nil {
		rec.started = boolPtr(*rec.started)
	}
	return rec
}

func (r *containerRunner) setState(f func(rec *containerRecord)) {
	r.mu.Lock()
	f(&r.rec)
	r.mu.Unlock()
	r.w.statusChanged()
}

func (r *containerRunner) finishedForGood() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forGood
}

func (r *containerRunner) succeeded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forGood && r.rec.state.Terminated != nil && r.rec.state.Terminated.ExitCode == 0
}

func (r *containerRunner) event(eventType, reason, format string, args ...interface{}) {
	r.w.event(r.ref, eventType, reason, format, args...)
}

// sleep waits d unless the runner is stopped (false then).
func (r *containerRunner) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *containerRunner) loop() {
	r.mu.Lock()
	claimed := r.loopClaimed
	r.loopClaimed = true
	r.mu.Unlock()
	if claimed {
		return
	}
	defer close(r.done)
	defer notify(r.w.wake)
	var lastPullFailure time.Time
	for r.ctx.Err() == nil {
		image, err := r.w.n.images.resolve(r.spec.Image)
		if err != nil {
			if !r.pullFailed(err, &lastPullFailure) {
				return
			}
			continue
		}
		r.event(v1.EventTypeNormal, "Pulled", "Container image %q already present on machine and can be accessed by the pod", r.spec.Image)
		exited, err := r.start(image)
		if err != nil {
			var ce *configError
			if errors.As(err, &ce) {
				r.setState(func(rec *containerRecord) {
					rec.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: ce.msg}}
				})
				r.event(v1.EventTypeWarning, "Failed", "Error: %s", ce.msg)
				if !r.sleep(10 * time.Second) {
					return
				}
				continue
			}
			r.event(v1.EventTypeWarning, "Failed", "Error: %v", err)
			now := metav1.Now()
			r.setState(func(rec *containerRecord) {
				rec.state = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: now, FinishedAt: now}}
			})
		} else {
			if r.ctx.Err() != nil { // stopped while starting: stop() may have missed it
				r.signalProcess(syscall.SIGKILL)
			}
			probeCtx, stopProbes := context.WithCancel(r.ctx)
			go r.runProbes(probeCtx)
			<-exited
			stopProbes()
			r.recordExit()
		}
		if r.ctx.Err() != nil || !r.restartAfterExit() {
			return
		}
	}
}

// pullFailed reports an image the node does not have, as a failed pull: ErrImagePull at
// once, then ImagePullBackOff while the back-off runs. False when stopped.
func (r *containerRunner) pullFailed(err error, lastFailure *time.Time) bool {
	now := time.Now()
	if wait := r.pulls.wait(*lastFailure, now); wait > 0 {
		msg := fmt.Sprintf("Back-off pulling image %q", r.spec.Image)
		r.event(v1.EventTypeNormal, "BackOff", "%s", msg)
		r.event(v1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		r.setState(func(rec *containerRecord) {
			rec.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ImagePullBackOff",
				Message: fmt.Sprintf("%s: ErrImagePull: %v", msg, err)}}
		})
		return r.sleep(wait)
	}
	r.event(v1.EventTypeNormal, "Pulling", "Pulling image %q", r.spec.Image)
	r.event(v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", r.spec.Image, err)
	r.event(v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
	r.setState(func(rec *containerRecord) {
		rec.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}}
	})
	r.pulls.next(now)
	*lastFailure = now
	return r.sleep(2 * time.Second)
}

// restartAfterExit applies the restart policy and the crash back-off; false means the
// container stays terminated.
func (r *containerRunner) restartAfterExit() bool {
	pod := r.w.current()
	rec := r.record()
	term := rec.state.Terminated
	if term == nil {
		return false
	}
	restart := false
	switch pod.Spec.RestartPolicy {
	case v1.RestartPolicyAlways:
		restart = !r.isInit || term.ExitCode != 0
	case v1.RestartPolicyOnFailure:
		restart = term.ExitCode != 0
	}
	if !restart {
		r.mu.Lock()
		r.forGood = true
		r.mu.Unlock()
		r.w.statusChanged()
		return false
	}
	finished := term.FinishedAt.Time
	if wait := r.restarts.wait(finished, time.Now()); wait > 0 {
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", r.restarts.delay, r.spec.Name, podDesc(pod))
		r.setState(func(rec *containerRecord) {
			rec.lastState = rec.state
			rec.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: msg}}
		})
		r.event(v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", r.spec.Name, podDesc(pod))
		if !r.sleep(wait) {
			return false
		}
	}
	r.restarts.next(finished)
	r.setState(func(rec *containerRecord) {
		rec.lastState = v1.ContainerState{Terminated: term}
		rec.restartCount++
	})
	return true
}

// recordExit turns the process's end into a terminated state.
func (r *containerRunner) recordExit() {
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	code := int32(0)
	if ps := cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int32(ws.Signal())
		} else {
			code = int32(ps.ExitCode())
		}
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	now := metav1.Now()
	r.setState(func(rec *containerRecord) {
		var startedAt metav1.Time
		if rec.state.Running != nil {
			startedAt = rec.state.Running.StartedAt
		}
		rec.state = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: startedAt, FinishedAt: now, ContainerID: rec.containerID}}
		rec.ready = false
		rec.started = boolPtr(false)
	})
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of its process group
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "node-agent://" + hex.EncodeToString(b)
}

// start prepares the environment and mounts and starts `node-agent pod-init`.
func (r *containerRunner) start(image imageConfig) (<-chan struct{}, error) {
	w := r.w
	pod := w.current()
	info := w.runtimeInfo()
	env, err := containerEnv(pod, r.spec, serviceEnv(pod, w.n.namespaceServices(pod.Namespace)), w.n, info)
	if err != nil {
		return nil, err
	}
	uid, gid, groups, err := containerIdentity(pod, r.spec, image)
	if err != nil {
		return nil, err
	}
	hostname, _ := podHostname(pod, w.n.cfg.clusterDomain)
	procEnv := processEnv(image, hostname, env)
	argv := containerArgv(r.spec, image, env)
	if len(argv) == 0 {
		return nil, &configError{"no command specified"}
	}
	workdir := r.spec.WorkingDir
	if workdir == "" {
		workdir = image.Workdir
	}
	w.mu.Lock()
	volumes := w.volumes
	w.mu.Unlock()
	anonDir := filepath.Join(w.podDir, "anon", r.spec.Name)
	mounts, err := containerMounts(pod, r.spec, volumes, image, workdir, filepath.Join(w.podDir, "etc"), anonDir, env)
	if err != nil {
		return nil, &configError{err.Error()}
	}
	if err := prepareAnonDirs(mounts, anonDir, image); err != nil {
		return nil, err
	}
	r.releaseMountPoints()
	for _, m := range mounts {
		st, err := os.Stat(m.Source)
		if err != nil {
			return nil, fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		made, err := w.n.host.ensureMountPoint(m.Target, !st.IsDir())
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.mountPoints = append(r.mountPoints, made...)
		r.mu.Unlock()
	}
	spec := initSpec{Hostname: hostname, Mounts: mounts, UID: int(uid), GID: int(gid), Workdir: workdir, Argv: argv, Env: procEnv}
	for _, g := range groups {
		spec.Groups = append(spec.Groups, int(g))
	}
	if !pod.Spec.HostNetwork {
		spec.NetNS = netnsPath(w.netns)
	}
	specPath := filepath.Join(w.podDir, r.spec.Name+".json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return nil, err
	}
	rec := r.record()
	logPath := filepath.Join(w.logDir, r.spec.Name, fmt.Sprintf("%d.log", rec.restartCount))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(w.n.self, podInitCommand, specPath)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Setpgid:    true,
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pidFile := filepath.Join(w.podDir, r.spec.Name+".pid")
	_ = writePidFile(pidFile, cmd.Process.Pid)
	exited := make(chan struct{})
	containerID := newContainerID()
	r.mu.Lock()
	r.cmd, r.exited, r.pid = cmd, exited, cmd.Process.Pid
	r.env, r.uid, r.gid, r.workdir = procEnv, uid, gid, workdir
	r.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		_ = os.Remove(pidFile)
		close(exited)
	}()
	imageID := w.n.images.imageID(r.spec.Image, image)
	now := metav1.Now()
	r.setState(func(rec *containerRecord) {
		rec.containerID = containerID
		rec.imageID = imageID
		rec.state = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}
		rec.ready = false
		rec.started = boolPtr(r.spec.StartupProbe == nil)
	})
	r.event(v1.EventTypeNormal, "Created", "Container created")
	r.event(v1.EventTypeNormal, "Started", "Container started")
	klog.Infof("node %s: pod %s container %s started (pid %d): %s", w.n.name, podDesc(pod), r.spec.Name, cmd.Process.Pid, strings.Join(argv, " "))
	return exited, nil
}

func (r *containerRunner) releaseMountPoints() {
	r.mu.Lock()
	made := r.mountPoints
	r.mountPoints = nil
	r.mu.Unlock()
	r.w.n.host.release(made)
}

// containerIdentity resolves uid, gid and supplementary groups from the security contexts
// and the image's USER.
func containerIdentity(pod *v1.Pod, c *v1.Container, image imageConfig) (uid, gid int64, groups []int64, err error) {
	uid, gid, ok := parseUser(image.User)
	if !ok {
		return 0, 0, nil, &configError{fmt.Sprintf("image user %q is not numeric", image.User)}
	}
	nonRoot := false
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
		if psc.RunAsNonRoot != nil {
			nonRoot = *psc.RunAsNonRoot
		}
		groups = append(groups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			groups = append(groups, *psc.FSGroup)
		}
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsUser != nil {
			uid = *csc.RunAsUser
		}
		if csc.RunAsGroup != nil {
			gid = *csc.RunAsGroup
		}
		if csc.RunAsNonRoot != nil {
			nonRoot = *csc.RunAsNonRoot
		}
	}
	if nonRoot && uid == 0 {
		return 0, 0, nil, &configError{fmt.Sprintf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(pod), c.Name)}
	}
	return uid, gid, groups, nil
}

// containerMounts lists the bind mounts of a container, parents before children: the pod's
// hosts and resolv.conf, the image's binary at its entrypoint path, the volume mounts, and
// an anonymous directory for the image's workdir and VOLUMEs no volume mount covers.
func containerMounts(pod *v1.Pod, c *v1.Container, volumes map[string]mountedVolume, image imageConfig, workdir, etcDir, anonDir string, env []string) ([]initMount, error) {
	var mounts []initMount
	if !pod.Spec.HostNetwork {
		mounts = append(mounts, initMount{Source: filepath.Join(etcDir, "hosts"), Target: "/etc/hosts"})
		if pod.Spec.DNSPolicy != v1.DNSDefault {
			mounts = append(mounts, initMount{Source: filepath.Join(etcDir, "resolv.conf"), Target: "/etc/resolv.conf"})
		}
	}
	if len(image.Entrypoint) > 0 && filepath.IsAbs(image.Entrypoint[0]) && image.Binary != "" {
		mounts = append(mounts, initMount{Source: image.Binary, Target: image.Entrypoint[0], ReadOnly: true})
	}
	covered := map[string]bool{}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for _, vm := range c.VolumeMounts {
		vol, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume %q of mount %s is not ready", vm.Name, vm.MountPath)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expansion.Expand(vm.SubPathExpr, expansion.MappingFuncFor(vars))
		}
		if !isSubPathSafe(sub) {
			return nil, fmt.Errorf("subPath %q must be a relative path inside the volume", sub)
		}
		src := vol.hostPath
		if sub != "" {
			src = filepath.Join(src, sub)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				if err := os.MkdirAll(src, 0o750); err != nil {
					return nil, err
				}
			}
		}
		target := filepath.Clean(vm.MountPath)
		covered[target] = true
		mounts = append(mounts, initMount{Source: src, Target: target, ReadOnly: vm.ReadOnly || vol.readOnly})
	}
	anon := append([]string{}, image.Volumes...)
	if workdir != "" && workdir != "/" {
		anon = append(anon, workdir)
	}
	for _, p := range anon {
		p = filepath.Clean(p)
		if covered[p] || coveredByParent(p, covered) {
			continue
		}
		covered[p] = true
		mounts = append(mounts, initMount{Source: filepath.Join(anonDir, strings.ReplaceAll(strings.Trim(p, "/"), "/", "_")), Target: p})
	}
	sort.SliceStable(mounts, func(i, j int) bool { return depth(mounts[i].Target) < depth(mounts[j].Target) })
	return mounts, nil
}

func coveredByParent(p string, covered map[string]bool) bool {
	for q := range covered {
		if strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

// prepareAnonDirs creates the anonymous directories, owned by the image's user as the
// image's own directories are.
func prepareAnonDirs(mounts []initMount, anonDir string, image imageConfig) error {
	uid, gid, _ := parseUser(image.User)
	for _, m := range mounts {
		if filepath.Dir(m.Source) != anonDir {
			continue
		}
		if _, err := os.Stat(m.Source); err == nil {
			continue
		}
		if err := os.MkdirAll(m.Source, 0o750); err != nil {
			return err
		}
		if err := os.Chown(m.Source, int(uid), int(gid)); err != nil {
			return err
		}
	}
	return nil
}

// signalProcess sends sig to the container's main process.
func (r *containerRunner) signalProcess(sig syscall.Signal) {
	r.mu.Lock()
	pid := r.pid
	exited := r.exited
	r.mu.Unlock()
	if pid > 0 && !isClosed(exited) {
		_ = syscall.Kill(pid, sig)
	}
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// kill stops the current process: preStop hook (optional), SIGTERM, SIGKILL after grace.
func (r *containerRunner) kill(grace time.Duration, runPreStop bool, message string) {
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	if isClosed(exited) {
		return
	}
	r.event(v1.EventTypeNormal, "Killing", "%s", message)
	deadline := time.Now().Add(grace)
	if runPreStop && r.spec.Lifecycle != nil && r.spec.Lifecycle.PreStop != nil && grace > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if out, err := r.runHandler(ctx, r.spec.Lifecycle.PreStop); err != nil {
			r.event(v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v %s", err, out)
		}
		cancel()
	}
	r.signalProcess(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Until(deadline)):
		r.mu.Lock()
		pid := r.pid
		r.mu.Unlock()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
}

// stop ends the runner for good (pod deletion or agent exit).
func (r *containerRunner) stop(grace time.Duration, runPreStop bool) {
	r.cancel()
	r.mu.Lock()
	if !r.loopClaimed { // the loop never ran: nothing to wait for
		r.loopClaimed = true
		close(r.done)
	}
	r.mu.Unlock()
	r.kill(grace, runPreStop, fmt.Sprintf("Stopping container %s", r.spec.Name))
	<-r.done
	r.mu.Lock()
	r.forGood = true
	if r.rec.state.Terminated == nil {
		// Waiting (back-off, image pull) containers end as terminated too.
		last := r.rec.lastState.Terminated
		term := &v1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerStatusUnknown",
			Message: "The container could not be located when the pod was terminated", FinishedAt: metav1.Now()}
		if last != nil {
			term = last.DeepCopy()
		}
		r.rec.state = v1.ContainerState{Terminated: term}
	}
	r.rec.ready = false
	r.mu.Unlock()
}
