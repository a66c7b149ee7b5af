package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
)

// Names the agent gives to what it creates, so a new run can find a previous run's leftovers.
const (
	netnsPrefix    = "rfpod-"
	vethHostPrefix = "rfv"
	vethPeerPrefix = "rfp"
)

// ipAllocator hands out pod addresses of one node's CIDR, skipping the network address,
// .1 and the broadcast address, and going round so a freed address is not reused at once.
type ipAllocator struct {
	mu    sync.Mutex
	base  uint32
	size  uint32
	next  uint32
	inUse map[uint32]bool
}

func newIPAllocator(cidr *net.IPNet) *ipAllocator {
	ones, bits := cidr.Mask.Size()
	return &ipAllocator{
		base:  binary.BigEndian.Uint32(cidr.IP.To4()),
		size:  uint32(1) << uint(bits-ones),
		next:  2,
		inUse: map[uint32]bool{},
	}
}

func (a *ipAllocator) allocate() (net.IP, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	usable := a.size - 3 // network, .1, broadcast
	for i := uint32(0); i < usable; i++ {
		off := a.next
		a.next++
		if a.next >= a.size-1 {
			a.next = 2
		}
		if !a.inUse[off] {
			a.inUse[off] = true
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, a.base+off)
			return ip, nil
		}
	}
	return nil, fmt.Errorf("no free pod address left")
}

func (a *ipAllocator) release(ip net.IP) {
	v4 := ip.To4()
	if v4 == nil {
		return
	}
	a.mu.Lock()
	delete(a.inUse, binary.BigEndian.Uint32(v4)-a.base)
	a.mu.Unlock()
}

// bridgePrefixLen finds the prefix length of the gateway's address on the bridge: pods of
// every node share that L2 segment, so they reach each other and the gateway directly.
func bridgePrefixLen(bridge string, gateway net.IP) (int, error) {
	iface, err := net.InterfaceByName(bridge)
	if err != nil {
		return 0, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return 0, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(gateway) {
			ones, _ := n.Mask.Size()
			return ones, nil
		}
	}
	return 0, fmt.Errorf("bridge %s does not carry the gateway address %s", bridge, gateway)
}

// sandboxNames derives the netns and veth names of a pod from its UID (veth names are
// limited to 15 bytes).
func sandboxNames(uid string) (netns, vethHost, vethPeer string) {
	id := strings.ReplaceAll(uid, "-", "")
	if len(id) > 10 {
		id = id[:10]
	}
	return netnsPrefix + id, vethHostPrefix + id, vethPeerPrefix + id
}

func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupPodNetwork makes the pod's netns with eth0 on the bridge. Pods reach the bridge's
// range on-link and the Service range through the gateway (kube-proxy's translation); there
// is no default route, so nothing a pod sends can be meant for another network.
func setupPodNetwork(netns, vethHost, vethPeer, bridge string, ip net.IP, prefixLen int, gateway net.IP, serviceCIDR string) error {
	teardownPodNetwork(netns, vethHost)
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", vethHost, "type", "veth", "peer", "name", vethPeer},
		{"link", "set", vethPeer, "netns", netns},
		{"link", "set", vethHost, "master", bridge},
		{"link", "set", vethHost, "type", "bridge_slave", "hairpin", "on"},
		{"link", "set", vethHost, "up"},
		{"-n", netns, "link", "set", vethPeer, "name", "eth0"},
		{"-n", netns, "addr", "add", fmt.Sprintf("%s/%d", ip, prefixLen), "dev", "eth0"},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "route", "add", serviceCIDR, "via", gateway.String(), "dev", "eth0"},
	}
	for _, s := range steps {
		if err := runIP(s...); err != nil {
			teardownPodNetwork(netns, vethHost)
			return err
		}
	}
	return nil
}

// teardownPodNetwork deletes the veth (its peer goes with it) and the netns; missing ones
// are fine.
func teardownPodNetwork(netns, vethHost string) {
	_ = runIP("link", "del", vethHost)
	_ = runIP("netns", "del", netns)
}

// cleanNetworkLeftovers removes every netns and veth a previous run left behind.
func cleanNetworkLeftovers() {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], netnsPrefix) {
				_ = runIP("netns", "del", f[0])
			}
		}
	}
	if entries, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), netnsPrefix) {
				_ = os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
			}
		}
	}
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, vethHostPrefix) || strings.HasPrefix(i.Name, vethPeerPrefix) {
			_ = runIP("link", "del", i.Name)
		}
	}
}

func netnsPath(netns string) string { return "/var/run/netns/" + netns }

// resolvConf is what the kubelet writes for dnsPolicy ClusterFirst, merged with dnsConfig.
func resolvConf(pod *v1.Pod, clusterDNS, domain string) string {
	nameservers := []string{clusterDNS}
	search := []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
	options := []string{"ndots:5"}
	if pod.Spec.DNSPolicy == v1.DNSNone {
		nameservers, search, options = nil, nil, nil
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		nameservers = append(nameservers, dc.Nameservers...)
		search = append(search, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			options = mergeOption(options, opt)
		}
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// mergeOption replaces an option of the same name (ndots:2 replaces ndots:5).
func mergeOption(options []string, opt string) []string {
	name, _, _ := strings.Cut(opt, ":")
	for i, o := range options {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			options[i] = opt
			return options
		}
	}
	return append(options, opt)
}

// podHostname is the pod's hostname and, with a subdomain, its fully qualified name.
func podHostname(pod *v1.Pod, domain string) (hostname, fqdn string) {
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
	}
	if pod.Spec.Subdomain != "" {
		fqdn = fmt.Sprintf("%s.%s.%s.svc.%s", hostname, pod.Spec.Subdomain, pod.Namespace, domain)
	}
	return hostname, fqdn
}

// etcHosts is the kubelet's managed hosts file.
func etcHosts(pod *v1.Pod, podIP, domain string) string {
	hostname, fqdn := podHostname(pod, domain)
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	if fqdn != "" {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", podIP, fqdn, hostname)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", podIP, hostname)
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
