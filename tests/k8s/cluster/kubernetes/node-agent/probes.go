package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeSettings are a probe's timing with the API defaults applied.
type probeSettings struct {
	initialDelay, period, timeout time.Duration
	successThreshold              int
	failureThreshold              int
}

func settingsOf(p *v1.Probe) probeSettings {
	s := probeSettings{
		initialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		period:           10 * time.Second,
		timeout:          time.Second,
		successThreshold: 1,
		failureThreshold: 3,
	}
	if p.PeriodSeconds > 0 {
		s.period = time.Duration(p.PeriodSeconds) * time.Second
	}
	if p.TimeoutSeconds > 0 {
		s.timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	if p.SuccessThreshold > 0 {
		s.successThreshold = int(p.SuccessThreshold)
	}
	if p.FailureThreshold > 0 {
		s.failureThreshold = int(p.FailureThreshold)
	}
	return s
}

// probeCounter applies the success and failure thresholds to a run of results.
type probeCounter struct {
	s                   probeSettings
	successes, failures int
}

// observe returns +1 when the successes reach the threshold, -1 when the failures do.
func (c *probeCounter) observe(ok bool) int {
	if ok {
		c.failures = 0
		c.successes++
		if c.successes >= c.s.successThreshold {
			return 1
		}
		return 0
	}
	c.successes = 0
	c.failures++
	if c.failures >= c.s.failureThreshold {
		return -1
	}
	return 0
}

// runProbes runs the startup probe, then readiness and liveness, until ctx ends (the
// process exited or the container is stopping).
func (r *containerRunner) runProbes(ctx context.Context) {
	spec := r.spec
	if spec.StartupProbe != nil {
		if !r.probeLoop(ctx, "Startup", spec.StartupProbe, func(verdict int) bool {
			if verdict > 0 {
				r.setState(func(rec *containerRecord) { rec.started = boolPtr(true) })
				return true
			}
			if verdict < 0 {
				go r.kill(r.probeGrace(spec.StartupProbe), true,
					fmt.Sprintf("Container %s failed startup probe, will be restarted", spec.Name))
				return true
			}
			return false
		}) {
			return
		}
		if s := r.record().started; s == nil || !*s {
			return
		}
	}
	if spec.ReadinessProbe == nil {
		r.setState(func(rec *containerRecord) { rec.ready = true })
	} else {
		go r.probeLoop(ctx, "Readiness", spec.ReadinessProbe, func(verdict int) bool {
			if verdict != 0 {
				ready := verdict > 0
				if r.record().ready != ready {
					r.setState(func(rec *containerRecord) { rec.ready = ready })
				}
			}
			return false
		})
	}
	if spec.LivenessProbe != nil && !r.isInit {
		go r.probeLoop(ctx, "Liveness", spec.LivenessProbe, func(verdict int) bool {
			if verdict < 0 {
				r.kill(r.probeGrace(spec.LivenessProbe), true,
					fmt.Sprintf("Container %s failed liveness probe, will be restarted", spec.Name))
				return true
			}
			return false
		})
	}
}

// probeGrace is the probe's terminationGracePeriodSeconds, else the pod's.
func (r *containerRunner) probeGrace(p *v1.Probe) time.Duration {
	if p.TerminationGracePeriodSeconds != nil {
		return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	if g := r.w.current().Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// probeLoop probes every period after the initial delay and hands each verdict to
// handle, which returns true to stop. It returns false when ctx ended.
func (r *containerRunner) probeLoop(ctx context.Context, kind string, p *v1.Probe, handle func(verdict int) bool) bool {
	s := settingsOf(p)
	counter := &probeCounter{s: s}
	if s.initialDelay > 0 && !sleepCtx(ctx, s.initialDelay) {
		return false
	}
	for {
		ok, out := r.probeOnce(ctx, p, s.timeout)
		if ctx.Err() != nil {
			return false
		}
		if !ok {
			r.event(v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, out)
		}
		if handle(counter.observe(ok)) {
			return true
		}
		if !sleepCtx(ctx, s.period) {
			return false
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// probeOnce runs one probe; the output explains a failure.
func (r *containerRunner) probeOnce(ctx context.Context, p *v1.Probe, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := p.ProbeHandler
	switch {
	case h.Exec != nil:
		out, err := r.execInContainer(ctx, h.Exec.Command)
		if ctx.Err() == context.DeadlineExceeded {
			return false, fmt.Sprintf("command %q timed out", strings.Join(h.Exec.Command, " "))
		}
		if err != nil {
			return false, strings.TrimSpace(string(out)) + " " + err.Error()
		}
		return true, ""
	case h.TCPSocket != nil:
		return r.tcpCheck(ctx, h.TCPSocket.Host, h.TCPSocket.Port)
	case h.HTTPGet != nil:
		return r.httpCheck(ctx, h.HTTPGet)
	}
	return false, "probe type not supported by the node agent"
}

func (r *containerRunner) podIP() string {
	return r.w.runtimeInfo().podIP
}

func (r *containerRunner) tcpCheck(ctx context.Context, host string, port intstr.IntOrString) (bool, string) {
	p, err := resolvePort(port, r.spec)
	if err != nil {
		return false, err.Error()
	}
	if host == "" {
		host = r.podIP()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p)))
	if err != nil {
		return false, err.Error()
	}
	conn.Close()
	return true, ""
}

func (r *containerRunner) httpCheck(ctx context.Context, g *v1.HTTPGetAction) (bool, string) {
	p, err := resolvePort(g.Port, r.spec)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = r.podIP()
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(p))}
	path := g.Path
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	full, err := url.Parse(u.String() + path)
	if err != nil {
		return false, err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full.String(), nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.36")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
		} else {
			req.Header.Add(h.Name, h.Value)
		}
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as the kubelet's prober
		DisableKeepAlives: true,
		Proxy:             nil,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

// resolvePort maps a numeric or named port of the container.
func resolvePort(port intstr.IntOrString, c *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %s in container %s", port.StrVal, c.Name)
}

// execCommand builds a command that runs inside the container's namespaces with its user,
// working directory and environment (nsenter: a Go process cannot join a mount namespace).
func (r *containerRunner) execCommand(ctx context.Context, argv []string) (*exec.Cmd, error) {
	r.mu.Lock()
	pid, uid, gid, env, workdir, exited := r.pid, r.uid, r.gid, r.env, r.workdir, r.exited
	r.mu.Unlock()
	if pid == 0 || isClosed(exited) {
		return nil, fmt.Errorf("container %s is not running", r.spec.Name)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	if workdir == "" {
		workdir = "/"
	}
	args := []string{"-t", strconv.Itoa(pid), "-m", "-u", "-n",
		"-S", strconv.FormatInt(uid, 10), "-G", strconv.FormatInt(gid, 10), "--wd=" + workdir, "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	cmd.Env = env
	return cmd, nil
}

func (r *containerRunner) execInContainer(ctx context.Context, argv []string) ([]byte, error) {
	cmd, err := r.execCommand(ctx, argv)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.Bytes(), err
}

// runHandler runs a lifecycle hook.
func (r *containerRunner) runHandler(ctx context.Context, h *v1.LifecycleHandler) (string, error) {
	switch {
	case h.Exec != nil:
		out, err := r.execInContainer(ctx, h.Exec.Command)
		return string(out), err
	case h.HTTPGet != nil:
		ok, out := r.httpCheck(ctx, h.HTTPGet)
		if !ok {
			return out, fmt.Errorf("http hook failed")
		}
		return "", nil
	case h.TCPSocket != nil:
		ok, out := r.tcpCheck(ctx, h.TCPSocket.Host, h.TCPSocket.Port)
		if !ok {
			return out, fmt.Errorf("tcp hook failed")
		}
		return "", nil
	case h.Sleep != nil:
		sleepCtx(ctx, time.Duration(h.Sleep.Seconds)*time.Second)
		return "", nil
	}
	return "", fmt.Errorf("hook type not supported")
}
