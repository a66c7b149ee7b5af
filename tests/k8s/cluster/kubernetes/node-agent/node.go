package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	kubeletVersion       = "v1.36.3"
	leaseRenewInterval   = 10 * time.Second
	leaseDurationSeconds = 40
	nodeStatusInterval   = 20 * time.Second
	volumeResyncInterval = 30 * time.Second
	// apiCallTimeout bounds the agent's one-shot API calls, so a hung request cannot hold
	// a pod worker (the client's own timeout would also cut the informers' watches).
	apiCallTimeout = 30 * time.Second
)

// nodeAgent is one node: its Node object, Lease, and the pods bound to it.
type nodeAgent struct {
	cfg       *config
	index     int
	name      string
	self      string
	podCIDR   *net.IPNet
	prefixLen int
	client    kubernetes.Interface
	recorder  record.EventRecorder
	events    record.EventBroadcaster
	images    *imageStore
	host      *hostResources
	ips       *ipAllocator

	services corelisters.ServiceLister
	pods     corelisters.PodLister

	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	finished map[types.UID]time.Time // pods whose worker ended: late updates must not restart them
	closing  bool
	wg       sync.WaitGroup

	tokensMu sync.Mutex
	tokens   map[string]cachedToken
}

type cachedToken struct {
	token   string
	issued  time.Time
	expires time.Time
}

func newNodeAgent(ctx context.Context, cfg *config, index int, name, self string, images *imageStore, host *hostResources, prefixLen int) (*nodeAgent, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(cfg.kubeconfigDir, name+".kubeconfig"))
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "node-agent/" + name
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &nodeAgent{
		cfg: cfg, index: index, name: name, self: self,
		podCIDR: cfg.podCIDRs[index], prefixLen: prefixLen,
		client: client, events: events,
		recorder: events.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: name}),
		images:   images, host: host,
		ips:      newIPAllocator(cfg.podCIDRs[index]),
		workers:  map[types.UID]*podWorker{},
		finished: map[types.UID]time.Time{},
		tokens:   map[string]cachedToken{},
	}, nil
}

func (n *nodeAgent) allocatable() v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse("4"),
		v1.ResourceMemory:           resource.MustParse("8Gi"),
		v1.ResourcePods:             resource.MustParse("110"),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

func (n *nodeAgent) run(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := n.register(ctx); err != nil {
			klog.Errorf("node %s: register: %v", n.name, err)
		}
	}, 2*time.Second) // returns only when ctx ends; register blocks while it works
}

// register creates the Node, then keeps its lease and status fresh and runs its pods.
func (n *nodeAgent) register(ctx context.Context) error {
	if err := n.ensureNode(ctx); err != nil {
		return err
	}
	klog.Infof("node %s registered (pod CIDR %s)", n.name, n.podCIDR)
	svcFactory := informers.NewSharedInformerFactory(n.client, 0)
	n.services = svcFactory.Core().V1().Services().Lister()
	podFactory := informers.NewSharedInformerFactoryWithOptions(n.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName=" + n.name
		}))
	podInformer := podFactory.Core().V1().Pods().Informer()
	n.pods = podFactory.Core().V1().Pods().Lister()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { n.podUpdated(obj) },
		UpdateFunc: func(_, obj interface{}) { n.podUpdated(obj) },
		DeleteFunc: func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				n.podRemoved(pod)
			}
		},
	})
	svcFactory.Start(ctx.Done())
	svcFactory.WaitForCacheSync(ctx.Done())
	go wait.UntilWithContext(ctx, n.renewLease, leaseRenewInterval)
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := n.updateNodeStatus(ctx); err != nil {
			klog.Errorf("node %s: status: %v", n.name, err)
		}
	}, nodeStatusInterval)
	podFactory.Start(ctx.Done())
	<-ctx.Done()
	return nil
}

func (n *nodeAgent) ensureNode(ctx context.Context) error {
	_, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: n.name,
				Labels: map[string]string{
					"kubernetes.io/hostname":  n.name,
					"kubernetes.io/os":        "linux",
					"kubernetes.io/arch":      "amd64",
					"beta.kubernetes.io/os":   "linux",
					"beta.kubernetes.io/arch": "amd64",
				},
				Annotations: map[string]string{
					"node.alpha.kubernetes.io/ttl":                           "0",
					"volumes.kubernetes.io/controller-managed-attach-detach": "true",
				},
			},
			Spec: v1.NodeSpec{PodCIDR: n.podCIDR.String(), PodCIDRs: []string{n.podCIDR.String()}},
		}
		_, err = n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	return n.updateNodeStatus(ctx)
}

// updateNodeStatus posts the status as a strategic merge patch of nodes/status, so fields
// other components own (taints, spec) are never sent back stale.
func (n *nodeAgent) updateNodeStatus(ctx context.Context) error {
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(node.Spec.PodCIDRs) > 0 && node.Spec.PodCIDRs[0] != n.podCIDR.String() {
		klog.Warningf("node %s: spec.podCIDR is %s, the agent uses %s", n.name, node.Spec.PodCIDRs[0], n.podCIDR)
	}
	status := nodeStatus(node.Status, n.cfg.gateway.String(), n.name, n.cfg.kubeletPortBase+n.index+1, n.allocatable(), metav1.Now())
	patch, err := json.Marshal(map[string]interface{}{"status": status})
	if err != nil {
		return err
	}
	_, err = n.client.CoreV1().Nodes().PatchStatus(ctx, n.name, patch)
	return err
}

// nodeStatus is what the kubelet posts: healthy conditions (transition times kept),
// addresses, capacity and node info.
func nodeStatus(old v1.NodeStatus, ip, hostname string, kubeletPort int, allocatable v1.ResourceList, now metav1.Time) v1.NodeStatus {
	type c struct {
		t       v1.NodeConditionType
		status  v1.ConditionStatus
		reason  string
		message string
	}
	wanted := []c{
		{v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
		{v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"},
	}
	st := old
	st.Conditions = nil
	for _, w := range wanted {
		cond := v1.NodeCondition{Type: w.t, Status: w.status, Reason: w.reason, Message: w.message,
			LastHeartbeatTime: now, LastTransitionTime: now}
		for _, o := range old.Conditions {
			if o.Type == w.t && o.Status == w.status {
				cond.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, cond)
	}
	st.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}, {Type: v1.NodeHostName, Address: hostname}}
	st.Capacity = allocatable.DeepCopy()
	st.Allocatable = allocatable.DeepCopy()
	st.DaemonEndpoints = v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(kubeletPort)}}
	st.NodeInfo = v1.NodeSystemInfo{
		MachineID:               readTrimmed("/etc/machine-id"),
		SystemUUID:              hostname,
		BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           readTrimmed("/proc/sys/kernel/osrelease"),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: "node-agent://" + kubeletVersion,
		KubeletVersion:          kubeletVersion,
		OperatingSystem:         "linux",
		Architecture:            "amd64",
	}
	return st
}

func readTrimmed(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}

func osImage() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func (n *nodeAgent) renewLease(ctx context.Context) {
	leases := n.client.CoordinationV1().Leases("kube-node-lease")
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: "kube-node-lease"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(n.name), LeaseDurationSeconds: ptr.To[int32](leaseDurationSeconds),
				RenewTime: &now,
			},
		}
		if node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{}); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	} else if err == nil {
		lease.Spec.HolderIdentity = ptr.To(n.name)
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDurationSeconds)
		lease.Spec.RenewTime = &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		klog.Errorf("node %s: lease: %v", n.name, err)
	}
}

func (n *nodeAgent) podUpdated(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != n.name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return
	}
	w := n.workers[pod.UID]
	if _, done := n.finished[pod.UID]; done && w == nil {
		return
	}
	if w == nil {
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			if pod.DeletionTimestamp != nil {
				// Finished before this agent saw it: nothing runs, only the final delete.
				go n.deleteFinally(pod)
			}
			return
		}
		w = newPodWorker(n, pod)
		n.workers[pod.UID] = w
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			w.run()
			n.workerEnded(pod.UID, time.Now())
		}()
		return
	}
	w.update(pod)
}

// workerEnded forgets a pod's worker and remembers for 10 minutes that it ended.
func (n *nodeAgent) workerEnded(uid types.UID, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.workers, uid)
	n.finished[uid] = now
	for u, at := range n.finished {
		if now.Sub(at) > 10*time.Minute {
			delete(n.finished, u)
		}
	}
}

func (n *nodeAgent) podRemoved(pod *v1.Pod) {
	n.mu.Lock()
	w := n.workers[pod.UID]
	n.mu.Unlock()
	if w != nil {
		w.removedFromAPI()
	}
}

// deleteFinally is the kubelet's last word on a pod: delete with grace 0, for this UID only.
func (n *nodeAgent) deleteFinally(pod *v1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	err := n.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.Errorf("pod %s/%s: final delete: %v", pod.Namespace, pod.Name, err)
	}
}

// shutdown stops every pod of the node (SIGTERM, SIGKILL after 5 s) and cleans up.
func (n *nodeAgent) shutdown(ctx context.Context) {
	n.mu.Lock()
	n.closing = true
	workers := make([]*podWorker, 0, len(n.workers))
	for _, w := range n.workers {
		workers = append(workers, w)
	}
	n.mu.Unlock()
	for _, w := range workers {
		w.shutdown()
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	n.events.Shutdown()
}

// objectSource and volumeSource through the node's identity.

func (n *nodeAgent) secret(namespace, name string) (*v1.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	return n.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (n *nodeAgent) configMap(namespace, name string) (*v1.ConfigMap, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	return n.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (n *nodeAgent) pvc(namespace, name string) (*v1.PersistentVolumeClaim, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	return n.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (n *nodeAgent) pv(name string) (*v1.PersistentVolume, error) {
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	return n.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
}

func (n *nodeAgent) token(pod *v1.Pod, audience string, expirationSeconds int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	key := fmt.Sprintf("%s/%s/%s/%d", pod.UID, sa, audience, expirationSeconds)
	now := time.Now()
	n.tokensMu.Lock()
	t, ok := n.tokens[key]
	n.tokensMu.Unlock()
	if ok && now.Before(t.issued.Add(t.expires.Sub(t.issued)*8/10)) {
		return t.token, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(expirationSeconds),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiCallTimeout)
	defer cancel()
	resp, err := n.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	t = cachedToken{token: resp.Status.Token, issued: now, expires: resp.Status.ExpirationTimestamp.Time}
	n.tokensMu.Lock()
	n.tokens[key] = t
	n.tokensMu.Unlock()
	return t.token, nil
}

func (n *nodeAgent) forgetTokens(uid types.UID) {
	n.tokensMu.Lock()
	defer n.tokensMu.Unlock()
	for k := range n.tokens {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(n.tokens, k)
		}
	}
}

// namespaceServices lists the Services whose env vars a pod of the namespace gets.
func (n *nodeAgent) namespaceServices(namespace string) []*v1.Service {
	if n.services == nil {
		return nil
	}
	all, _ := n.services.List(labels.Everything())
	var out []*v1.Service
	for _, s := range all {
		if s.Namespace == namespace || (s.Namespace == "default" && s.Name == "kubernetes") {
			out = append(out, s)
		}
	}
	return out
}
