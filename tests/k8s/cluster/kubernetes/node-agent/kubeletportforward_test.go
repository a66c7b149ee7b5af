package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// echoInNewNetns starts a line echo server on 127.0.0.1:port in a fresh network namespace
// (unshare -n) and returns that namespace's file. The host's loopback has no such server.
func echoInNewNetns(t *testing.T, port int) string {
	t.Helper()
	script := fmt.Sprintf(`
import socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(4); print("ready", flush=True)
while True:
    c, _ = s.accept(); f = c.makefile("rwb")
    for line in f: f.write(b"echo " + line); f.flush()
    c.close()
`, port)
	cmd := exec.Command("unshare", "-n", "python3", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("echo server: %q %v", line, err)
	}
	return fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestPortForwardIntoPodNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("joining a network namespace needs root")
	}
	port := freePort(t)
	nsFile := echoInNewNetns(t, port)

	// The dial itself: inside the namespace, the echo server answers.
	conn, err := dialInNetns(t.Context(), nsFile, port)
	if err != nil {
		t.Fatalf("dial in netns: %v", err)
	}
	conn.Close()

	n := &nodeAgent{workers: map[types.UID]*podWorker{}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "p", UID: "u1"}}
	n.workers[pod.UID] = &podWorker{n: n, uid: pod.UID, pod: pod, nsFile: nsFile}
	srv := httptest.NewUnstartedServer(n.kubeletHandler())
	srv.EnableHTTP2 = false
	srv.StartTLS()
	defer srv.Close()

	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/portForward/ns1/p")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errCh := make(chan error, 1)
	go func() { errCh <- fw.ForwardPorts() }()
	defer close(stop)
	select {
	case <-ready:
	case err := <-errCh:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("ports %v %v", ports, err)
	}
	for i := 0; i < 2; i++ { // two connections: two stream pairs
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "hello %d\n", i)
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || got != fmt.Sprintf("echo hello %d\n", i) {
			t.Fatalf("through the forward: %q %v", got, err)
		}
	}
	if _, err := dialInNetns(t.Context(), nsFile, freePort(t)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a closed port must be refused: %v", err)
	}
}
