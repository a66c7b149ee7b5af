package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

const portForwardProtocolV1 = "portforward.k8s.io"

// servePortForward is the kubelet's /portForward/{namespace}/{pod} over SPDY: each
// forwarded connection is a pair of streams (error, data) with one requestID, and the data
// goes to localhost:<port> inside the pod's network namespace, as a runtime does.
func (n *nodeAgent) servePortForward(w http.ResponseWriter, r *http.Request) {
	ns, podName := r.PathValue("namespace"), r.PathValue("pod")
	pw := n.findWorker(ns, podName)
	if pw == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not running on this node", ns, podName), http.StatusNotFound)
		return
	}
	if _, err := httpstream.Handshake(r, w, []string{portForwardProtocolV1}); err != nil {
		return
	}
	streams := make(chan httpstream.Stream, 16)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, replySent <-chan struct{}) error {
		go func() { <-replySent; streams <- s }()
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	conn.SetIdleTimeout(4 * time.Hour)

	type pair struct{ errStream, data httpstream.Stream }
	pairs := map[string]*pair{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-conn.CloseChan():
			return
		case s := <-streams:
			id := s.Headers().Get(v1.PortForwardRequestIDHeader)
			p := pairs[id]
			if p == nil {
				p = &pair{}
				pairs[id] = p
			}
			switch s.Headers().Get(v1.StreamType) {
			case v1.StreamTypeError:
				p.errStream = s
			case v1.StreamTypeData:
				p.data = s
			}
			if p.errStream == nil || p.data == nil {
				continue
			}
			delete(pairs, id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.forwardStream(r.Context(), pw, p.errStream, p.data)
			}()
		}
	}
}

// forwardStream copies one data stream to and from the pod's port.
func (n *nodeAgent) forwardStream(ctx context.Context, pw *podWorker, errStream, data httpstream.Stream) {
	defer errStream.Close()
	defer data.Close()
	port, err := strconv.Atoi(data.Headers().Get(v1.PortHeader))
	if err == nil && (port <= 0 || port > 65535) {
		err = fmt.Errorf("port %d out of range", port)
	}
	var conn net.Conn
	if err == nil {
		conn, err = dialInNetns(ctx, pw.netnsFile(), port)
	}
	if err != nil {
		pod := pw.current()
		fmt.Fprintf(errStream, "error forwarding port %d to pod %s, uid %v: %v", port, pod.Name, pod.UID, err)
		return
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(conn, data) // the client closed its side: tell the server
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(data, conn)
	_ = data.Close()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// dialInNetns connects to localhost:port inside a network namespace (the host's when
// netnsFile is empty). The socket is made on a thread that joined the namespace; the
// thread goes back to the host namespace before anyone else may run on it.
func dialInNetns(ctx context.Context, netnsFile string, port int) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var d net.Dialer
	if netnsFile == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		host, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer unix.Close(host)
		target, err := unix.Open(netnsFile, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if unix.Setns(host, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // otherwise the thread ends with this goroutine
		}
		ch <- result{conn, err}
	}()
	res := <-ch
	return res.conn, res.err
}

// findWorker is the worker of a pod of this node.
func (n *nodeAgent) findWorker(namespace, podName string) *podWorker {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.workers {
		if p := w.current(); p.Namespace == namespace && p.Name == podName {
			return w
		}
	}
	return nil
}
