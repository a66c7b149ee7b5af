package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// podWorker runs one pod: sandbox (netns, hosts, resolv.conf), volumes, init containers,
// containers, status, and the graceful end.
type podWorker struct {
	n      *nodeAgent
	uid    types.UID
	podDir string
	logDir string

	mu           sync.Mutex
	pod          *v1.Pod
	firstSeen    *v1.Pod // as the agent found it, before its own status patches
	gone         bool    // the pod object no longer exists in the API
	stopping     bool
	netns        string
	nsFile       string // netnsPath(netns) once the sandbox exists, empty for hostNetwork
	vethHost     string
	vethPeer     string
	ip           net.IP
	lastIP       net.IP // stays in the status after the sandbox is gone, as the kubelet's does
	sandboxReady bool
	startTime    *metav1.Time
	volumes      map[string]mountedVolume
	init         []*containerRunner
	containers   []*containerRunner
	terminated   bool
	lastSent     *v1.PodStatus

	wake        chan struct{}
	statusDirty chan struct{}
	shutdownCh  chan struct{}
	shutdownOne sync.Once
}

func newPodWorker(n *nodeAgent, pod *v1.Pod) *podWorker {
	netns, vh, vp := sandboxNames(string(pod.UID))
	return &podWorker{
		n: n, uid: pod.UID, pod: pod, firstSeen: pod,
		podDir: filepath.Join(n.cfg.stateDir, "pods", string(pod.UID)),
		logDir: filepath.Join(n.cfg.stateDir, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		netns:  netns, vethHost: vh, vethPeer: vp,
		wake:        make(chan struct{}, 1),
		statusDirty: make(chan struct{}, 1),
		shutdownCh:  make(chan struct{}),
	}
}

func (w *podWorker) current() *v1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod
}

func (w *podWorker) update(pod *v1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	notify(w.wake)
}

func (w *podWorker) removedFromAPI() {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	notify(w.wake)
}

// shutdown is the agent's own exit: stop with a 5 s grace, no API calls.
func (w *podWorker) shutdown() {
	w.shutdownOne.Do(func() { close(w.shutdownCh) })
	notify(w.wake)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (w *podWorker) statusChanged() { notify(w.statusDirty) }

func (w *podWorker) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

func (w *podWorker) isShutdown() bool {
	select {
	case <-w.shutdownCh:
		return true
	default:
		return false
	}
}

// endRequested: the pod is being deleted, is gone, or the agent exits.
func (w *podWorker) endRequested() bool {
	p := w.current()
	return p.DeletionTimestamp != nil || w.isGone() || w.isShutdown()
}

func (w *podWorker) event(ref *v1.ObjectReference, eventType, reason, format string, args ...interface{}) {
	if w.isShutdown() {
		return
	}
	w.n.recorder.Eventf(ref, eventType, reason, format, args...)
}

func (w *podWorker) podRef() *v1.ObjectReference {
	p := w.current()
	return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

func podDesc(p *v1.Pod) string { return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID) }

// sleepOrEnd waits d unless the pod's end is requested first (returns false then).
func (w *podWorker) sleepOrEnd(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if w.endRequested() {
			return false
		}
		select {
		case <-w.wake:
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
	}
	return !w.endRequested()
}

func (w *podWorker) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	statusDone := make(chan struct{})
	go func() { defer close(statusDone); w.statusLoop(ctx) }()

	w.startPod()
	w.waitForEnd()
	w.stopAll()
	w.teardown()
	cancel()
	<-statusDone
	if !w.isShutdown() && !w.isGone() {
		w.syncStatus(true)
		w.n.deleteFinally(w.current())
	}
	os.RemoveAll(w.podDir)
	w.n.forgetTokens(w.uid)
}

// startPod brings the sandbox, volumes and containers up, unless the pod's end comes first.
func (w *podWorker) startPod() {
	pod := w.current()
	klog.Infof("node %s: starting pod %s/%s", w.n.name, pod.Namespace, pod.Name)
	if err := os.MkdirAll(w.podDir, 0o755); err != nil {
		klog.Errorf("pod %s: %v", podDesc(pod), err)
	}
	now := metav1.Now()
	w.mu.Lock()
	w.startTime = &now
	if pod.Status.StartTime != nil {
		w.startTime = pod.Status.StartTime
	}
	w.mu.Unlock()
	w.statusChanged()

	for attempt := 0; ; attempt++ {
		if w.endRequested() {
			return
		}
		err := w.setupSandbox()
		if err == nil {
			break
		}
		klog.Errorf("pod %s: sandbox: %v", podDesc(pod), err)
		w.event(w.podRef(), v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		if !w.sleepOrEnd(retryDelay(attempt)) {
			return
		}
	}
	for attempt := 0; ; attempt++ {
		if w.endRequested() {
			return
		}
		vols, err := prepareVolumes(w.current(), w.podDir, w.n, w.runtimeInfo(), true, time.Now())
		if err == nil {
			w.mu.Lock()
			w.volumes = vols
			w.mu.Unlock()
			break
		}
		// Right after binding, the Node authorizer may not know the pod yet (its graph
		// follows the same watch as we do): retry such refusals quietly for a moment.
		if attempt < 4 && strings.Contains(err.Error(), "is forbidden") {
			if !w.sleepOrEnd(500 * time.Millisecond) {
				return
			}
			continue
		}
		w.event(w.podRef(), v1.EventTypeWarning, "FailedMount", "%v", err)
		if !w.sleepOrEnd(retryDelay(attempt)) {
			return
		}
	}

	pod = w.current()
	var init, containers []*containerRunner
	for i := range pod.Spec.InitContainers {
		init = append(init, newContainerRunner(w, &pod.Spec.InitContainers[i], true))
	}
	for i := range pod.Spec.Containers {
		containers = append(containers, newContainerRunner(w, &pod.Spec.Containers[i], false))
	}
	w.mu.Lock()
	w.init, w.containers = init, containers
	w.mu.Unlock()
	for _, c := range w.init {
		c.seedFromStatus(w.firstSeen.Status.InitContainerStatuses)
	}
	for _, c := range w.containers {
		c.seedFromStatus(w.firstSeen.Status.ContainerStatuses)
	}
	w.statusChanged()
	for _, c := range w.init {
		go c.loop()
		if !w.waitInit(c) {
			return // the pod ends, or the init container failed for good
		}
	}
	for _, c := range w.containers {
		go c.loop()
	}
}

// waitInit waits for an init container to run to completion; false if it failed for good
// or the pod's end was requested.
func (w *podWorker) waitInit(c *containerRunner) bool {
	for {
		select {
		case <-c.done:
			return c.succeeded()
		case <-w.wake:
			if w.endRequested() {
				return false
			}
		}
	}
}

func retryDelay(attempt int) time.Duration {
	d := time.Second << uint(min(attempt, 5))
	return min(d, 30*time.Second)
}

// waitForEnd keeps volumes fresh until the pod is deleted, gone or the agent exits, and
// notices when every container finished for good.
func (w *podWorker) waitForEnd() {
	resync := time.NewTicker(volumeResyncInterval)
	defer resync.Stop()
	for !w.endRequested() {
		select {
		case <-w.wake:
		case <-resync.C:
			if vols, err := prepareVolumes(w.current(), w.podDir, w.n, w.runtimeInfo(), false, time.Now()); err != nil {
				klog.V(2).Infof("pod %s: volume resync: %v", podDesc(w.current()), err)
			} else {
				w.mu.Lock()
				w.volumes = vols
				w.mu.Unlock()
			}
		}
		if w.allFinished() && !w.terminatedFlag() {
			// Nothing restarts any more: release the sandbox, as the kubelet does.
			w.mu.Lock()
			w.terminated = true
			w.mu.Unlock()
			w.teardownNetwork()
			w.statusChanged()
		}
	}
}

func (w *podWorker) terminatedFlag() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.terminated
}

func (w *podWorker) allFinished() bool {
	w.mu.Lock()
	cs := append([]*containerRunner{}, w.containers...)
	initFailed := false
	for _, c := range w.init {
		if c.finishedForGood() && !c.succeeded() {
			initFailed = true
		}
	}
	w.mu.Unlock()
	if initFailed {
		return true
	}
	if len(cs) == 0 {
		return false
	}
	for _, c := range cs {
		if !c.finishedForGood() {
			return false
		}
	}
	return true
}

// stopAll stops every container with the pod's grace period (5 s on agent exit, none when
// the pod is gone from the API).
func (w *podWorker) stopAll() {
	pod := w.current()
	grace := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	}
	runPreStop := true
	switch {
	case w.isShutdown():
		grace, runPreStop = 5, false
	case w.isGone():
		grace, runPreStop = 0, false
	}
	w.mu.Lock()
	w.stopping = true
	all := append(append([]*containerRunner{}, w.init...), w.containers...)
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(time.Duration(grace)*time.Second, runPreStop) }()
	}
	wg.Wait()
	w.mu.Lock()
	w.terminated = true
	w.mu.Unlock()
	w.statusChanged()
}

func (w *podWorker) runtimeInfo() podRuntimeInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	info := podRuntimeInfo{hostIP: w.n.cfg.gateway.String(), nodeAllocatable: w.n.allocatable()}
	if w.ip != nil {
		info.podIP = w.ip.String()
	}
	return info
}

func (w *podWorker) hostNetwork() bool { return w.current().Spec.HostNetwork }

// netnsFile is the pod's network namespace file, empty for hostNetwork pods.
func (w *podWorker) netnsFile() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nsFile
}

// setupSandbox makes the pod's network and its hosts, resolv.conf files.
func (w *podWorker) setupSandbox() error {
	pod := w.current()
	var ip net.IP
	if w.hostNetwork() {
		ip = w.n.cfg.gateway
	} else {
		w.mu.Lock()
		ip = w.ip
		w.mu.Unlock()
		if ip == nil {
			var err error
			if ip, err = w.n.ips.allocate(); err != nil {
				return err
			}
		}
		if err := setupPodNetwork(w.netns, w.vethHost, w.vethPeer, w.n.cfg.bridge, ip, w.n.prefixLen, w.n.cfg.gateway, w.n.cfg.serviceCIDR); err != nil {
			w.n.ips.release(ip)
			return err
		}
	}
	etc := filepath.Join(w.podDir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(etc, "hosts"), []byte(etcHosts(pod, ip.String(), w.n.cfg.clusterDomain)), 0o644); err != nil {
		return err
	}
	resolv := resolvConf(pod, w.n.cfg.clusterDNS, w.n.cfg.clusterDomain)
	if err := writeFileAtomic(filepath.Join(etc, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		return err
	}
	if !w.hostNetwork() {
		// `ip netns exec` bind-mounts these over /etc, so host tools run in the pod's netns
		// resolve names as the pod does.
		if err := writeNetnsEtc(w.netns, etc); err != nil {
			return err
		}
	}
	nsFile := ""
	if !w.hostNetwork() {
		nsFile = netnsPath(w.netns)
	}
	w.mu.Lock()
	w.nsFile = nsFile
	w.ip, w.lastIP = ip, ip
	w.sandboxReady = true
	w.mu.Unlock()
	w.statusChanged()
	return nil
}

func netnsEtcDir(netns string) string { return filepath.Join("/etc/netns", netns) }

func writeNetnsEtc(netns, podEtc string) error {
	dir := netnsEtcDir(netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"hosts", "resolv.conf"} {
		data, err := os.ReadFile(filepath.Join(podEtc, name))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (w *podWorker) teardownNetwork() {
	w.mu.Lock()
	ip := w.ip
	w.ip = nil
	w.sandboxReady = false
	w.mu.Unlock()
	if w.hostNetwork() {
		return
	}
	teardownPodNetwork(w.netns, w.vethHost)
	_ = os.RemoveAll(netnsEtcDir(w.netns))
	if ip != nil {
		w.n.ips.release(ip)
	}
}

func (w *podWorker) teardown() {
	w.teardownNetwork()
	w.mu.Lock()
	all := append(append([]*containerRunner{}, w.init...), w.containers...)
	w.mu.Unlock()
	for _, c := range all {
		c.releaseMountPoints()
	}
}

// snapshot is the current state for status building.
func (w *podWorker) snapshot() podSnapshot {
	w.mu.Lock()
	snap := podSnapshot{
		sandboxReady: w.sandboxReady,
		hostIP:       w.n.cfg.gateway.String(),
		startTime:    w.startTime,
		terminated:   w.terminated,
	}
	if w.lastIP != nil {
		snap.podIP = w.lastIP.String()
	}
	init := append([]*containerRunner{}, w.init...)
	containers := append([]*containerRunner{}, w.containers...)
	w.mu.Unlock()
	pod := w.current()
	if len(init) == 0 {
		for _, c := range pod.Spec.InitContainers {
			snap.init = append(snap.init, containerRecord{name: c.Name, image: c.Image,
				state: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "PodInitializing"}}})
		}
	}
	for _, c := range init {
		snap.init = append(snap.init, c.record())
	}
	if len(containers) == 0 {
		reason := "ContainerCreating"
		if len(pod.Spec.InitContainers) > 0 {
			reason = "PodInitializing"
		}
		for _, c := range pod.Spec.Containers {
			snap.containers = append(snap.containers, containerRecord{name: c.Name, image: c.Image,
				started: boolPtr(false), state: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason}}})
		}
	}
	for _, c := range containers {
		snap.containers = append(snap.containers, c.record())
	}
	return snap
}

func boolPtr(b bool) *bool { return &b }

// statusLoop patches pods/status whenever something changed (at most every 200 ms) and
// every 10 s in case a patch was lost.
func (w *podWorker) statusLoop(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.statusDirty:
			time.Sleep(200 * time.Millisecond)
		case <-tick.C:
		}
		if !w.isShutdown() && !w.isGone() {
			w.syncStatus(false)
		}
	}
}

func (w *podWorker) syncStatus(force bool) {
	pod := w.current()
	status := buildPodStatus(pod, w.snapshot(), metav1.Now())
	w.mu.Lock()
	same := w.lastSent != nil && reflect.DeepEqual(*w.lastSent, status)
	w.mu.Unlock()
	if same && !force && statusMatchesPod(pod, &status) {
		return
	}
	patch, err := json.Marshal(map[string]interface{}{
		"metadata": map[string]interface{}{"uid": pod.UID},
		"status":   status,
	})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	_, err = w.n.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if !apierrors.IsNotFound(err) {
			klog.Errorf("pod %s: status patch: %v", podDesc(pod), err)
		}
		return
	}
	w.mu.Lock()
	w.lastSent = &status
	w.mu.Unlock()
}

// statusMatchesPod: the informer's copy already shows what we sent (a lost patch would not).
func statusMatchesPod(pod *v1.Pod, st *v1.PodStatus) bool {
	return pod.Status.Phase == st.Phase && pod.Status.PodIP == st.PodIP &&
		len(pod.Status.ContainerStatuses) == len(st.ContainerStatuses)
}
