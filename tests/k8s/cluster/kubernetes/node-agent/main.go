// node-agent stands in for the kubelet on a real upstream control plane when no container
// runtime exists: one process runs several nodes and every pod bound to them as plain
// processes in network namespaces. Test tooling only (see scripts/k8s/cluster.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// config is the command line, shared by every node of the process.
type config struct {
	stateDir              string
	kubeconfigDir         string
	provisionerKubeconfig string
	nodes                 []string
	podCIDRs              []*net.IPNet
	bridge                string
	gateway               net.IP
	clusterDNS            string
	clusterDomain         string
	serviceCIDR           string
	imagesFile            string
	kubeletPortBase       int
	tlsCertFile           string
	tlsKeyFile            string
	clientCAFile          string
}

func parseConfig(args []string) (*config, error) {
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	c := &config{}
	var nodes, cidrs, gateway string
	fs.StringVar(&c.stateDir, "state-dir", "", "pods/, volumes/ (PV dirs) and logs/ live here")
	fs.StringVar(&c.kubeconfigDir, "kubeconfig-dir", "", "holds <node>.kubeconfig for each node")
	fs.StringVar(&c.provisionerKubeconfig, "provisioner-kubeconfig", "", "identity of the local volume provisioner")
	fs.StringVar(&nodes, "nodes", "rf-node-1,rf-node-2,rf-node-3", "comma-separated node names")
	fs.StringVar(&cidrs, "pod-cidrs", "", "one pod CIDR per node, same order as --nodes")
	fs.StringVar(&c.bridge, "bridge", "rfk8s0", "bridge the pods' veths join")
	fs.StringVar(&gateway, "gateway", "", "bridge address: pods' default gateway and the nodes' InternalIP")
	fs.StringVar(&c.clusterDNS, "cluster-dns", "10.96.0.10", "nameserver written to pods' resolv.conf")
	fs.StringVar(&c.serviceCIDR, "service-cidr", "10.96.0.0/16", "Service range, routed through the gateway; pods get no default route")
	fs.StringVar(&c.clusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	fs.StringVar(&c.imagesFile, "images", "", "JSON map of image repository to host binary and image config")
	fs.IntVar(&c.kubeletPortBase, "kubelet-port-base", 0, "node i (1-based) serves the kubelet API on gateway:base+i; 0 disables it")
	fs.StringVar(&c.tlsCertFile, "tls-cert-file", "", "serving certificate of the kubelet API")
	fs.StringVar(&c.tlsKeyFile, "tls-key-file", "", "serving key of the kubelet API")
	fs.StringVar(&c.clientCAFile, "client-ca-file", "", "CA of the apiserver's kubelet client certificate")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.stateDir == "" || c.kubeconfigDir == "" || c.imagesFile == "" || gateway == "" {
		return nil, fmt.Errorf("--state-dir, --kubeconfig-dir, --images and --gateway are required")
	}
	c.nodes = splitList(nodes)
	for _, s := range splitList(cidrs) {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("--pod-cidrs: %w", err)
		}
		c.podCIDRs = append(c.podCIDRs, n)
	}
	if len(c.podCIDRs) != len(c.nodes) {
		return nil, fmt.Errorf("--pod-cidrs has %d entries for %d nodes", len(c.podCIDRs), len(c.nodes))
	}
	if c.gateway = net.ParseIP(gateway).To4(); c.gateway == nil {
		return nil, fmt.Errorf("--gateway %q is not an IPv4 address", gateway)
	}
	abs, err := filepath.Abs(c.stateDir)
	if err != nil {
		return nil, err
	}
	c.stateDir = abs
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == podInitCommand {
		podInitMain(os.Args[2:])
		return
	}
	klog.InitFlags(nil)
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, d := range []string{"pods", "volumes", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.stateDir, d), 0o755); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	host := newHostResources(cfg.stateDir)
	host.cleanLeftovers()
	cleanNetworkLeftovers()
	images := &imageStore{path: cfg.imagesFile}
	if _, err := images.load(); err != nil {
		return err
	}
	prefixLen, err := bridgePrefixLen(cfg.bridge, cfg.gateway)
	if err != nil {
		return err
	}

	var nodes []*nodeAgent
	for i, name := range cfg.nodes {
		n, err := newNodeAgent(ctx, cfg, i, name, self, images, host, prefixLen)
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.run(ctx) }()
	}
	if cfg.provisionerKubeconfig != "" {
		p, err := newProvisioner(cfg)
		if err != nil {
			return fmt.Errorf("provisioner: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx) }()
	}
	if cfg.kubeletPortBase > 0 {
		for i, n := range nodes {
			addr := net.JoinHostPort(cfg.gateway.String(), fmt.Sprint(cfg.kubeletPortBase+i+1))
			go func() {
				if err := serveKubeletAPI(ctx, cfg, addr, n); err != nil {
					klog.Errorf("kubelet API of %s on %s: %v", n.name, addr, err)
				}
			}()
		}
	}
	<-ctx.Done()
	klog.Infof("signal received: stopping every pod")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sw sync.WaitGroup
	for _, n := range nodes {
		sw.Add(1)
		go func() { defer sw.Done(); n.shutdown(shutdownCtx) }()
	}
	sw.Wait()
	wg.Wait()
	host.removeAllMountPoints()
	return nil
}
