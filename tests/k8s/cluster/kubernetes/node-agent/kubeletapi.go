package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
)

// serveKubeletAPI serves the part of the kubelet API that `kubectl logs`, `exec` and
// `port-forward` need: GET /containerLogs/<namespace>/<pod>/<container>?follow&tailLines&previous&limitBytes
// /exec/<namespace>/<pod>/<container>?command=... (see serveExec) and
// /portForward/<namespace>/<pod> (see servePortForward).
// Clients must present a certificate of --client-ca-file (the apiserver's kubelet client).
func serveKubeletAPI(ctx context.Context, cfg *config, addr string, n *nodeAgent) error {
	if cfg.tlsCertFile == "" || cfg.tlsKeyFile == "" {
		return fmt.Errorf("--tls-cert-file and --tls-key-file are needed for the kubelet API")
	}
	// HTTP/1.1 only: exec upgrades (hijacks) the connection, which HTTP/2 cannot.
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	if cfg.clientCAFile != "" {
		pem, err := os.ReadFile(cfg.clientCAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no certificate", cfg.clientCAFile)
		}
		tlsCfg.ClientCAs = pool
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	srv := &http.Server{Addr: addr, Handler: n.kubeletHandler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	err := srv.ListenAndServeTLS(cfg.tlsCertFile, cfg.tlsKeyFile)
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// kubeletHandler routes the kubelet API subset.
func (n *nodeAgent) kubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		n.serveContainerLogs(r.Context(), w, r)
	})
	mux.HandleFunc("POST /exec/{namespace}/{pod}/{container}", n.serveExec)
	mux.HandleFunc("GET /exec/{namespace}/{pod}/{container}", n.serveExec)
	mux.HandleFunc("POST /portForward/{namespace}/{pod}", n.servePortForward)
	mux.HandleFunc("GET /portForward/{namespace}/{pod}", n.servePortForward)
	return mux
}

func (n *nodeAgent) serveContainerLogs(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	if n.pods == nil {
		http.Error(w, "node not ready", http.StatusServiceUnavailable)
		return
	}
	pod, err := n.pods.Pods(ns).Get(podName)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	restarts := -1
	for _, s := range append(append([]containerRestarts{}, toStatuses(pod.Status.InitContainerStatuses)...), toStatuses(pod.Status.ContainerStatuses)...) {
		if s.name == container {
			restarts = s.restarts
		}
	}
	if restarts < 0 {
		http.Error(w, fmt.Sprintf("container %q in pod %q is not available", container, podName), http.StatusNotFound)
		return
	}
	if q.Get("previous") == "true" {
		if restarts == 0 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, podName), http.StatusBadRequest)
			return
		}
		restarts--
	}
	path := filepath.Join(n.cfg.stateDir, "logs", fmt.Sprintf("%s_%s_%s", ns, podName, pod.UID), container, fmt.Sprintf("%d.log", restarts))
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	tail := -1
	if s := q.Get("tailLines"); s != "" {
		if tail, err = strconv.Atoi(s); err != nil || tail < 0 {
			http.Error(w, "bad tailLines", http.StatusBadRequest)
			return
		}
	}
	limit := int64(-1)
	if s := q.Get("limitBytes"); s != "" {
		if limit, err = strconv.ParseInt(s, 10, 64); err != nil || limit <= 0 {
			http.Error(w, "bad limitBytes", http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	var out io.Writer = w
	if limit > 0 {
		out = &limitWriter{w: w, left: limit}
	}
	if tail >= 0 {
		if _, err := f.Seek(tailOffset(f, tail), io.SeekStart); err != nil {
			return
		}
	}
	if _, err := io.Copy(out, f); err != nil {
		return
	}
	if q.Get("follow") != "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := io.Copy(out, f); err != nil {
			return
		}
		if lw, ok := out.(*limitWriter); ok && lw.left <= 0 {
			return
		}
	}
}

type containerRestarts struct {
	name     string
	restarts int
}

func toStatuses(in []v1.ContainerStatus) []containerRestarts {
	out := make([]containerRestarts, 0, len(in))
	for _, s := range in {
		out = append(out, containerRestarts{name: s.Name, restarts: int(s.RestartCount)})
	}
	return out
}

// tailOffset finds where the last n lines of f start.
func tailOffset(f *os.File, n int) int64 {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0
	}
	var offsets []int64
	var pos int64
	rd := bufio.NewReader(f)
	for {
		line, err := rd.ReadString('\n')
		if len(line) > 0 {
			offsets = append(offsets, pos)
			pos += int64(len(line))
		}
		if err != nil {
			break
		}
	}
	if n >= len(offsets) {
		return 0
	}
	if n == 0 {
		return pos
	}
	return offsets[len(offsets)-n]
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
