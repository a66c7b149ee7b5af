package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// TestExecOverSPDY drives the /exec endpoint with client-go's SPDY executor (what the
// apiserver's exec proxy speaks to a kubelet) into a "container" that is this test process
// itself: nsenter joins its own namespaces, so it needs root, as the agent does.
func TestExecOverSPDY(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nsenter needs root")
	}
	n := &nodeAgent{workers: map[types.UID]*podWorker{}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "p", UID: "u1"}}
	w := &podWorker{n: n, uid: pod.UID, pod: pod}
	r := &containerRunner{w: w, spec: &v1.Container{Name: "c"}, pid: os.Getpid(), exited: make(chan struct{}),
		uid: int64(os.Getuid()), gid: int64(os.Getgid()), workdir: "/", env: []string{"PATH=/usr/bin:/bin", "GREETING=hello"}}
	w.containers = []*containerRunner{r}
	n.workers[pod.UID] = w

	srv := httptest.NewUnstartedServer(n.kubeletHandler())
	srv.EnableHTTP2 = false
	srv.StartTLS()
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}

	run := func(stdin string, command ...string) (string, string, error) {
		q := url.Values{"command": command, "output": {"1"}, "error": {"1"}}
		if stdin != "" {
			q.Set("input", "1")
		}
		u, _ := url.Parse(srv.URL + "/exec/ns1/p/c?" + q.Encode())
		ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
		if stdin != "" {
			opts.Stdin = strings.NewReader(stdin)
		}
		err = ex.StreamWithContext(context.Background(), opts)
		return out.String(), errOut.String(), err
	}
	out, _, err := run("", "sh", "-c", "echo $GREETING; echo oops >&2")
	if err != nil || out != "hello\n" {
		t.Fatalf("exec: %q %v", out, err)
	}
	_, errOut, err := run("", "sh", "-c", "echo oops >&2; exit 7")
	var code exec.ExitError
	if !errors.As(err, &code) || code.ExitStatus() != 7 || errOut != "oops\n" {
		t.Fatalf("exit code: %v (stderr %q)", err, errOut)
	}
	out, _, err = run("line1\nline2\n", "wc", "-l")
	if err != nil || strings.TrimSpace(out) != "2" {
		t.Fatalf("stdin: %q %v", out, err)
	}

	// With a tty: a terminal of the size the client sends, stderr merged, the exit code kept.
	// (The size arrives on its own stream: wait for it, bounded, before reading it.)
	script := `for i in $(seq 50); do [ "$(stty size)" != "0 0" ] && break; sleep 0.1; done; tty; stty size; echo err >&2; exit 4`
	q := url.Values{"command": {"sh", "-c", script}, "output": {"1"}, "tty": {"1"}}
	u, _ := url.Parse(srv.URL + "/exec/ns1/p/c?" + q.Encode())
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var tout bytes.Buffer
	err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{
		Stdout: &tout, Tty: true, TerminalSizeQueue: &oneSize{size: remotecommand.TerminalSize{Width: 100, Height: 30}}})
	got := strings.ReplaceAll(tout.String(), "\r\n", "\n")
	if !errors.As(err, &code) || code.ExitStatus() != 4 ||
		!strings.HasPrefix(got, "/dev/pts/") || !strings.Contains(got, "\n30 100\nerr\n") {
		t.Fatalf("tty exec: %q %v", got, err)
	}
}

// oneSize hands out one terminal size, then none.
type oneSize struct {
	sent bool
	size remotecommand.TerminalSize
}

func (o *oneSize) Next() *remotecommand.TerminalSize {
	if o.sent {
		return nil
	}
	o.sent = true
	return &o.size
}
