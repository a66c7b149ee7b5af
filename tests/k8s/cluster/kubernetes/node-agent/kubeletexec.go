package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// The remotecommand protocol versions served over SPDY; v4 reports the exit code as a
// metav1.Status on the error stream (what kubectl exec prints and exits with).
const execProtocolV4 = "v4.channel.k8s.io"

// execStreams are the streams an exec request asks for, by the query's input, output,
// error and tty flags.
type execStreams struct {
	stdin, stdout, stderr, tty bool
}

func execStreamsOf(q map[string][]string) execStreams {
	flag := func(k string) bool {
		v := q[k]
		return len(v) > 0 && (v[0] == "1" || v[0] == "true")
	}
	s := execStreams{stdin: flag("input"), stdout: flag("output"), stderr: flag("error"), tty: flag("tty")}
	if s.tty {
		s.stderr = false // a terminal merges stderr into stdout
	}
	return s
}

// expected counts the streams the client opens: error, the requested ones, resize with a tty.
func (s execStreams) expected() int {
	n := 1
	for _, b := range []bool{s.stdin, s.stdout, s.stderr, s.tty} {
		if b {
			n++
		}
	}
	return n
}

// exitStatus is the v4 error-stream message for a command's end.
func exitStatus(err error) *metav1.Status {
	if err == nil {
		return &metav1.Status{Status: metav1.StatusSuccess}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		return &metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", err),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(code)}}},
		}
	}
	return &metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
}

// serveExec is the kubelet's /exec/{namespace}/{pod}/{container}?command=...: SPDY
// remotecommand (v4) with nsenter into the container, on a pseudo-terminal when the
// client asks for a tty (kubectl exec -t), else on pipes.
func (n *nodeAgent) serveExec(w http.ResponseWriter, r *http.Request) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	argv := q["command"]
	if len(argv) == 0 {
		http.Error(w, "missing command", http.StatusBadRequest)
		return
	}
	runner := n.findRunner(ns, podName, container)
	if runner == nil {
		http.Error(w, fmt.Sprintf("container %q of pod %s/%s is not running on this node", container, ns, podName), http.StatusNotFound)
		return
	}
	want := execStreamsOf(q)
	if _, err := httpstream.Handshake(r, w, []string{execProtocolV4}); err != nil {
		return // Handshake wrote the error
	}
	streamCh := make(chan httpstream.Stream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, replySent <-chan struct{}) error {
		go func() { <-replySent; streamCh <- s }()
		return nil
	})
	if conn == nil {
		return // UpgradeResponse wrote the error
	}
	defer conn.Close()
	conn.SetIdleTimeout(4 * time.Hour)

	var errStream, stdin, stdout, stderr, resize httpstream.Stream
	deadline := time.After(30 * time.Second)
	for got := 0; got < want.expected(); got++ {
		select {
		case s := <-streamCh:
			switch s.Headers().Get("streamType") {
			case "error":
				errStream = s
			case "stdin":
				stdin = s
			case "stdout":
				stdout = s
			case "stderr":
				stderr = s
			case "resize":
				resize = s
			}
		case <-deadline:
			return
		case <-conn.CloseChan():
			return
		}
	}
	if errStream == nil {
		return
	}
	ctx := r.Context()
	cmd, err := runner.execCommand(ctx, argv)
	if err == nil {
		if want.tty {
			err = runWithTTY(cmd, stdin, stdout, resize)
		} else {
			if stdin != nil {
				cmd.Stdin = stdin
			}
			if stdout != nil {
				cmd.Stdout = stdout
			}
			if stderr != nil {
				cmd.Stderr = stderr
			}
			err = cmd.Run()
		}
	}
	data, _ := json.Marshal(exitStatus(err))
	_, _ = errStream.Write(data)
	for _, s := range []httpstream.Stream{stdout, stderr, errStream} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// runWithTTY runs cmd on a new pseudo-terminal as its controlling terminal: stdin goes to
// it, its output to stdout, and the resize stream's sizes (JSON {"Width","Height"}) to
// its window size.
func runWithTTY(cmd *exec.Cmd, stdin io.Reader, stdout io.Writer, resize io.Reader) error {
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		return err
	}
	if resize != nil {
		go func() {
			dec := json.NewDecoder(resize)
			for {
				var size struct{ Width, Height uint16 }
				if dec.Decode(&size) != nil {
					return
				}
				_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
			}
		}()
	}
	if stdin != nil {
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	if stdout != nil {
		_, _ = io.Copy(stdout, master) // ends with EIO once the command and its children closed the terminal
	}
	return cmd.Wait()
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// findRunner is the running container of a pod of this node.
func (n *nodeAgent) findRunner(namespace, podName, container string) *containerRunner {
	w := n.findWorker(namespace, podName)
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range append(append([]*containerRunner{}, w.containers...), w.init...) {
		if c.spec.Name == container {
			return c
		}
	}
	return nil
}
