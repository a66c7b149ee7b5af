package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// fakeObjects serves Secrets and ConfigMaps from maps.
type fakeObjects struct {
	secrets    map[string]*v1.Secret
	configMaps map[string]*v1.ConfigMap
}

func (f *fakeObjects) secret(ns, name string) (*v1.Secret, error) {
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (f *fakeObjects) configMap(ns, name string) (*v1.ConfigMap, error) {
	if c, ok := f.configMaps[ns+"/"+name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "rf-0", Namespace: "ns1", UID: "1234-abcd",
			Labels: map[string]string{"app": "rf", "role": "master"}},
		Spec: v1.PodSpec{NodeName: "rf-node-1", ServiceAccountName: "sa1"},
	}
}

func objects() *fakeObjects {
	return &fakeObjects{
		secrets: map[string]*v1.Secret{"ns1/pw": {Data: map[string][]byte{"password": []byte("s3cret")}}},
		configMaps: map[string]*v1.ConfigMap{"ns1/cfg": {Data: map[string]string{
			"B_KEY": "b", "A_KEY": "a", "redis.conf": "port 6379\n"}}},
	}
}

func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("malformed env entry %q", kv)
		}
		m[k] = v
	}
	return m
}

func TestContainerEnvExpansionAndSources(t *testing.T) {
	pod := testPod()
	c := &v1.Container{
		Name: "server",
		EnvFrom: []v1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
			{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
		},
		Env: []v1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "ROLE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['role']"}}},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "HOST", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "SA", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
			{Name: "PW", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
				LocalObjectReference: v1.LocalObjectReference{Name: "pw"}, Key: "password"}}},
			{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
				LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "nope", Optional: ptr.To(true)}}},
			{Name: "FILE", Value: "/etc/$(POD_NAME).conf"},
			{Name: "ESCAPED", Value: "$$(POD_NAME) and $(UNDEFINED) and $(CM_A_KEY)"},
			{Name: "SVC", Value: "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
			{Name: "LATER_REF", Value: "$(DEFINED_LATER)"},
			{Name: "DEFINED_LATER", Value: "x"},
		},
	}
	svc := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
	env, err := containerEnv(pod, c, svc, objects(), podRuntimeInfo{podIP: "10.244.1.2", hostIP: "10.244.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	m := envMap(t, env)
	want := map[string]string{
		"CM_A_KEY": "a", "CM_B_KEY": "b", "CM_redis.conf": "port 6379\n", "POD_NAME": "rf-0", "ROLE": "master",
		"IP": "10.244.1.2", "HOST": "10.244.0.1", "NODE": "rf-node-1", "SA": "sa1", "PW": "s3cret",
		"FILE":    "/etc/rf-0.conf",
		"ESCAPED": "$(POD_NAME) and $(UNDEFINED) and a",
		"SVC":     "10.96.0.1:443", "LATER_REF": "$(DEFINED_LATER)", "DEFINED_LATER": "x",
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["OPT"]; ok {
		t.Errorf("an optional missing key must leave the variable out, got %q", m["OPT"])
	}
	if len(m) != len(want) {
		t.Errorf("got %d variables, want %d: %v", len(m), len(want), env)
	}
	// Service variables come after the container's own ones.
	if !strings.HasPrefix(env[len(env)-1], "KUBERNETES_SERVICE_") {
		t.Errorf("service variables should close the list: %v", env)
	}
}

func TestContainerEnvMissingSourcesAreConfigErrors(t *testing.T) {
	pod := testPod()
	cases := map[string]v1.EnvVar{
		`secret "nope" not found`: {Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
			LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
		"couldn't find key missing in Secret ns1/pw": {Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
			LocalObjectReference: v1.LocalObjectReference{Name: "pw"}, Key: "missing"}}},
		`configmap "gone" not found`: {Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
			LocalObjectReference: v1.LocalObjectReference{Name: "gone"}, Key: "k"}}},
	}
	for want, ev := range cases {
		_, err := containerEnv(pod, &v1.Container{Env: []v1.EnvVar{ev}}, nil, objects(), podRuntimeInfo{})
		ce, ok := err.(*configError)
		if !ok || ce.msg != want {
			t.Errorf("got %v, want config error %q", err, want)
		}
	}
}

func TestServiceEnvHonoursEnableServiceLinks(t *testing.T) {
	svc := func(ns, name, ip string, port int32) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1.ServiceSpec{ClusterIP: ip, Ports: []v1.ServicePort{{Name: "https", Port: port, Protocol: v1.ProtocolTCP}}}}
	}
	services := []*v1.Service{
		svc("default", "kubernetes", "10.96.0.1", 443),
		svc("ns1", "rf-master", "10.96.0.20", 6379),
		svc("ns1", "rf-headless", v1.ClusterIPNone, 6379),
		svc("other", "elsewhere", "10.96.0.30", 80),
	}
	pod := testPod()
	env := serviceEnv(pod, services)
	if env["RF_MASTER_SERVICE_HOST"] != "10.96.0.20" || env["RF_MASTER_SERVICE_PORT"] != "6379" {
		t.Errorf("namespace service missing: %v", env)
	}
	if env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" || env["KUBERNETES_SERVICE_PORT_HTTPS"] != "443" {
		t.Errorf("master service missing: %v", env)
	}
	if _, ok := env["RF_HEADLESS_SERVICE_HOST"]; ok {
		t.Error("headless services get no variables")
	}
	if _, ok := env["ELSEWHERE_SERVICE_HOST"]; ok {
		t.Error("other namespaces' services get no variables")
	}
	pod.Spec.EnableServiceLinks = ptr.To(false)
	env = serviceEnv(pod, services)
	if _, ok := env["RF_MASTER_SERVICE_HOST"]; ok {
		t.Error("enableServiceLinks=false must drop namespace services")
	}
	if env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" {
		t.Error("the master service stays with enableServiceLinks=false")
	}
}

func TestContainerArgvCombinesImageAndSpec(t *testing.T) {
	image := imageConfig{Entrypoint: []string{"/usr/local/bin/rf-server"}, Cmd: []string{"/data/redis.conf"}}
	env := []string{"POD_NAME=rf-0", "PW=x y"}
	cases := []struct {
		command, args, want []string
	}{
		{nil, nil, []string{"/usr/local/bin/rf-server", "/data/redis.conf"}},
		{nil, []string{"/etc/$(POD_NAME).conf", "--requirepass", "$(PW)", "$$(PW)"},
			[]string{"/usr/local/bin/rf-server", "/etc/rf-0.conf", "--requirepass", "x y", "$(PW)"}},
		{[]string{"rf-sentinel"}, nil, []string{"rf-sentinel"}},
		{[]string{"sh", "-c"}, []string{"echo $(POD_NAME)"}, []string{"sh", "-c", "echo rf-0"}},
	}
	for _, tc := range cases {
		got := containerArgv(&v1.Container{Command: tc.command, Args: tc.args}, image, env)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("command %v args %v: got %v, want %v", tc.command, tc.args, got, tc.want)
		}
	}
}

func TestProcessEnvLetsContainerVariablesWin(t *testing.T) {
	got := processEnv(imageConfig{Env: []string{"PATH=/img", "LANG=C"}}, "rf-0", []string{"LANG=en", "A=1"})
	want := []string{"PATH=/img", "HOSTNAME=rf-0", "LANG=en", "A=1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = processEnv(imageConfig{}, "h", nil)
	if !hasEnv(got, "PATH") || !hasEnv(got, "HOSTNAME") {
		t.Errorf("default PATH and HOSTNAME missing: %v", got)
	}
}

func TestImageRepositoryIgnoresTagAndDigest(t *testing.T) {
	cases := map[string]string{
		"redis-failover/rf-server":                         "redis-failover/rf-server",
		"redis-failover/rf-server:0.1.0-e2e-upgrade":       "redis-failover/rf-server",
		"docker.io/redis-failover/rf-server:1@sha256:abcd": "redis-failover/rf-server",
		"localhost:5000/redis-failover/rf-server":          "localhost:5000/redis-failover/rf-server",
		"localhost:5000/redis-failover/rf-server:2":        "localhost:5000/redis-failover/rf-server",
		"busybox":                        "busybox",
		"docker.io/library/busybox:1.36": "busybox",
	}
	for in, want := range cases {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "images.json")
	if err := os.WriteFile(path, []byte(`{"redis-failover/rf-server": {"binary": "/bin/true", "entrypoint": ["/usr/local/bin/rf-server"], "user": "65532:65532"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	store := &imageStore{path: path}
	cfg, err := store.resolve("redis-failover/rf-server:0.1.0-e2e-upgrade")
	if err != nil || cfg.Binary != "/bin/true" {
		t.Fatalf("resolve: %v %+v", err, cfg)
	}
	if _, err := store.resolve("nginx:latest"); err == nil || !strings.Contains(err.Error(), `"nginx:latest"`) {
		t.Fatalf("an unknown image must fail to pull, got %v", err)
	}
	if uid, gid, ok := parseUser("65532:65532"); !ok || uid != 65532 || gid != 65532 {
		t.Errorf("parseUser: %d %d %v", uid, gid, ok)
	}
}

func TestBackoffFollowsKubeletSchedule(t *testing.T) {
	b := newBackoff()
	t0 := time.Unix(1000, 0)
	if w := b.wait(t0, t0); w != 0 {
		t.Fatalf("first failure restarts at once, got %v", w)
	}
	b.next(t0)
	// Second crash 2 s after the restart: 10 s from that crash.
	t1 := t0.Add(2 * time.Second)
	if w := b.wait(t1, t1); w != 10*time.Second {
		t.Fatalf("second failure waits 10s, got %v", w)
	}
	if w := b.wait(t1, t1.Add(4*time.Second)); w != 6*time.Second {
		t.Fatalf("the wait counts from the failure, got %v", w)
	}
	b.next(t1)
	var delays []time.Duration
	at := t1
	for i := 0; i < 7; i++ {
		at = at.Add(time.Second)
		delays = append(delays, b.wait(at, at))
		b.next(at)
	}
	want := []time.Duration{20, 40, 80, 160, 300, 300, 300}
	for i, d := range delays {
		if d != want[i]*time.Second {
			t.Fatalf("delays %v, want %v seconds", delays, want)
		}
	}
	// A container that ran for more than 10 minutes starts over.
	late := at.Add(11 * time.Minute)
	if w := b.wait(late, late); w != 0 {
		t.Fatalf("an old record is forgotten, got %v", w)
	}
	b.next(late)
	if b.delay != backoffInitial {
		t.Fatalf("delay restarts at %v, got %v", backoffInitial, b.delay)
	}
}

func TestIPAllocatorSkipsReservedAndReusesLast(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.244.1.0/29") // .0 network, .1 reserved, .7 broadcast
	a := newIPAllocator(cidr)
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := a.allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	want := []string{"10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := a.allocate(); err == nil {
		t.Fatal("a full range must refuse")
	}
	a.release(net.ParseIP("10.244.1.3"))
	ip, err := a.allocate()
	if err != nil || ip.String() != "10.244.1.3" {
		t.Fatalf("released address not handed out again: %v %v", ip, err)
	}
}

func TestHostsAndResolvConf(t *testing.T) {
	pod := testPod()
	pod.Spec.Hostname = "rf-0"
	pod.Spec.Subdomain = "rf-headless"
	hosts := etcHosts(pod, "10.244.1.7", "cluster.local")
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost\n") ||
		!strings.Contains(hosts, "10.244.1.7\trf-0.rf-headless.ns1.svc.cluster.local\trf-0\n") {
		t.Errorf("hosts file:\n%s", hosts)
	}
	resolv := resolvConf(pod, "10.96.0.10", "cluster.local")
	want := "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	if resolv != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", resolv, want)
	}
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}}
	if r := resolvConf(pod, "10.96.0.10", "cluster.local"); !strings.HasSuffix(r, "options ndots:2\n") {
		t.Errorf("dnsConfig option must replace ndots:\n%s", r)
	}
}

func readLayout(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			out[e.Name()] = "-> " + target
		} else if e.IsDir() {
			out[e.Name()] = "dir"
		}
	}
	return out
}

func TestAtomicWriterLayoutAndUpdate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	t0 := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	payload := map[string]fileProjection{
		"redis.conf":  {data: []byte("port 6379\n"), mode: 0o644},
		"sub/key.pem": {data: []byte("secret"), mode: 0o600},
	}
	wrote, err := writeAtomically(dir, payload, t0)
	if err != nil || !wrote {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	layout := readLayout(t, dir)
	if layout["redis.conf"] != "-> ..data/redis.conf" || layout["sub"] != "-> ..data/sub" {
		t.Fatalf("user-visible links: %v", layout)
	}
	data, err := os.ReadFile(filepath.Join(dir, "sub", "key.pem"))
	if err != nil || string(data) != "secret" {
		t.Fatalf("read through links: %q %v", data, err)
	}
	st, _ := os.Stat(filepath.Join(dir, "sub", "key.pem"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	firstTs, _ := os.Readlink(filepath.Join(dir, "..data"))
	if !strings.HasPrefix(firstTs, "..2026_12_07_15_00_00.") {
		t.Errorf("timestamped dir name %q", firstTs)
	}
	// Same content: nothing written.
	if wrote, err := writeAtomically(dir, payload, t0.Add(time.Minute)); err != nil || wrote {
		t.Fatalf("unchanged payload rewrote: %v %v", wrote, err)
	}
	// An update swaps ..data, drops the removed key and the old directory.
	update := map[string]fileProjection{"redis.conf": {data: []byte("port 6380\n"), mode: 0o644}}
	if wrote, err := writeAtomically(dir, update, t0.Add(2*time.Minute)); err != nil || !wrote {
		t.Fatalf("update: %v %v", wrote, err)
	}
	layout = readLayout(t, dir)
	if _, ok := layout["sub"]; ok {
		t.Errorf("removed key still linked: %v", layout)
	}
	if _, ok := layout[firstTs]; ok {
		t.Errorf("old timestamped dir kept: %v", layout)
	}
	var names []string
	for k := range layout {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) != 3 { // ..<ts>, ..data, redis.conf
		t.Errorf("entries %v", names)
	}
	data, _ = os.ReadFile(filepath.Join(dir, "redis.conf"))
	if string(data) != "port 6380\n" {
		t.Errorf("updated content %q", data)
	}
	if _, err := writeAtomically(dir, map[string]fileProjection{"../escape": {}}, t0); err == nil {
		t.Error("a path climbing out of the volume must be refused")
	}
}

// fakeVolumes adds claims and tokens to fakeObjects.
type fakeVolumes struct {
	*fakeObjects
	pvDir string
}

func (f *fakeVolumes) pvc(ns, name string) (*v1.PersistentVolumeClaim, error) {
	return &v1.PersistentVolumeClaim{Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pv1"},
		Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound}}, nil
}

func (f *fakeVolumes) pv(name string) (*v1.PersistentVolume, error) {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: f.pvDir}}}}, nil
}

func (f *fakeVolumes) token(pod *v1.Pod, audience string, exp int64) (string, error) {
	return "token-for-" + pod.Spec.ServiceAccountName, nil
}

func TestPrepareVolumesLayout(t *testing.T) {
	podDir := t.TempDir()
	pvDir := t.TempDir()
	pod := testPod()
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To[int64](int64(os.Getgid()))}
	pod.Spec.Volumes = []v1.Volume{
		{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "redis.conf", Path: "rf-0.conf", Mode: ptr.To[int32](0o600)}}}}},
		{Name: "pw", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "pw", DefaultMode: ptr.To[int32](0o400)}}},
		{Name: "maybe", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "absent", Optional: ptr.To(true)}}},
		{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "pvc", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data-rf-0"}}},
		{Name: "kube-api-access", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](0o644),
			Sources: []v1.VolumeProjection{
				{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
				{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
					Items: []v1.KeyToPath{{Key: "A_KEY", Path: "ca.crt"}}}},
				{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			}}}},
		{Name: "labels", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
	}
	src := &fakeVolumes{fakeObjects: objects(), pvDir: pvDir}
	vols, err := prepareVolumes(pod, podDir, src, podRuntimeInfo{}, true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read := func(vol, file string) string {
		data, err := os.ReadFile(filepath.Join(vols[vol].hostPath, file))
		if err != nil {
			t.Errorf("%s/%s: %v", vol, file, err)
		}
		return string(data)
	}
	if vols["config"].hostPath != filepath.Join(podDir, "volumes", "kubernetes.io~configmap", "config") || !vols["config"].readOnly {
		t.Errorf("configMap volume at %+v", vols["config"])
	}
	if read("config", "rf-0.conf") != "port 6379\n" {
		t.Error("configMap item content")
	}
	if _, err := os.Stat(filepath.Join(vols["config"].hostPath, "A_KEY")); err == nil {
		t.Error("items restrict the keys written")
	}
	st, _ := os.Stat(filepath.Join(vols["config"].hostPath, "rf-0.conf"))
	if st.Mode().Perm() != 0o640 { // item mode 0600 plus group read from fsGroup
		t.Errorf("configMap item mode %v, want 0640", st.Mode().Perm())
	}
	if read("pw", "password") != "s3cret" {
		t.Error("secret content")
	}
	// An optional absent secret is an empty volume: a timestamped dir and ..data, no keys.
	entries, err := os.ReadDir(vols["maybe"].hostPath)
	if err != nil || len(entries) != 2 {
		t.Errorf("optional absent secret volume: %v %v", entries, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			t.Errorf("optional absent secret has a key %s", e.Name())
		}
	}
	if vols["pvc"].hostPath != pvDir {
		t.Errorf("claim path %s, want %s", vols["pvc"].hostPath, pvDir)
	}
	if st, _ := os.Stat(vols["data"].hostPath); st == nil || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir mode %v, want setgid 0777", st.Mode())
	}
	if read("kube-api-access", "token") != "token-for-sa1" || read("kube-api-access", "ca.crt") != "a" ||
		read("kube-api-access", "namespace") != "ns1" {
		t.Error("projected volume content")
	}
	if got := read("labels", "labels"); got != "app=\"rf\"\nrole=\"master\"" {
		t.Errorf("downwardAPI labels %q", got)
	}
	// A missing non-optional source fails with the kubelet's message.
	pod.Spec.Volumes = []v1.Volume{{Name: "bad", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}}}
	_, err = prepareVolumes(pod, podDir, src, podRuntimeInfo{}, true, time.Now())
	if err == nil || !strings.Contains(err.Error(), `MountVolume.SetUp failed for volume "bad" : configmap "nope" not found`) {
		t.Errorf("missing configmap: %v", err)
	}
}

func TestContainerMountsOrderAndAnonymousWorkdir(t *testing.T) {
	pod := testPod()
	image := imageConfig{Binary: "/host/rf-server", Entrypoint: []string{"/usr/local/bin/rf-server"}, Workdir: "/data"}
	c := &v1.Container{VolumeMounts: []v1.VolumeMount{
		{Name: "config", MountPath: "/etc/redis-failover", ReadOnly: true},
		{Name: "cfgsub", MountPath: "/etc/redis-failover/extra", SubPath: "sub"},
	}}
	volDir := t.TempDir()
	vols := map[string]mountedVolume{"config": {hostPath: "/v/config", readOnly: true}, "cfgsub": {hostPath: volDir}}
	mounts, err := containerMounts(pod, c, vols, image, "/data", "/pod/etc", "/pod/anon/server", nil)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range mounts {
		targets = append(targets, m.Target)
	}
	// Parents before children: sorted by depth, stable otherwise.
	want := []string{"/data", "/etc/hosts", "/etc/resolv.conf", "/etc/redis-failover", "/etc/redis-failover/extra", "/usr/local/bin/rf-server"}
	if !reflect.DeepEqual(targets, want) {
		t.Fatalf("targets %v, want %v", targets, want)
	}
	if mounts[5].Source != "/host/rf-server" || !mounts[5].ReadOnly {
		t.Errorf("binary mount %+v", mounts[5])
	}
	if mounts[0].Source != "/pod/anon/server/data" || mounts[0].ReadOnly {
		t.Errorf("anonymous workdir %+v", mounts[0])
	}
	if mounts[3].Source != "/v/config" || !mounts[3].ReadOnly {
		t.Errorf("configMap mount %+v", mounts[3])
	}
	if mounts[4].Source != filepath.Join(volDir, "sub") || mounts[4].ReadOnly {
		t.Errorf("subPath mount %+v", mounts[4])
	}
	if st, err := os.Stat(filepath.Join(volDir, "sub")); err != nil || !st.IsDir() {
		t.Error("a missing subPath is created")
	}
	// A volume at the workdir replaces the anonymous one.
	c.VolumeMounts = append(c.VolumeMounts, v1.VolumeMount{Name: "config", MountPath: "/data"})
	mounts, _ = containerMounts(pod, c, vols, image, "/data", "/pod/etc", "/pod/anon/server", nil)
	for _, m := range mounts {
		if strings.HasPrefix(m.Source, "/pod/anon") {
			t.Errorf("anonymous dir despite a volume: %+v", m)
		}
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "cfgsub", MountPath: "/x", SubPath: "../../etc"}}
	if _, err := containerMounts(pod, c, vols, image, "/", "/pod/etc", "/pod/anon/server", nil); err == nil {
		t.Error("a subPath climbing out must be refused")
	}
}

func TestContainerIdentity(t *testing.T) {
	pod := testPod()
	image := imageConfig{User: "65532:65532"}
	uid, gid, groups, err := containerIdentity(pod, &v1.Container{}, image)
	if err != nil || uid != 65532 || gid != 65532 || len(groups) != 0 {
		t.Fatalf("image user: %d %d %v %v", uid, gid, groups, err)
	}
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000),
		FSGroup: ptr.To[int64](3000), SupplementalGroups: []int64{4000}}
	c := &v1.Container{SecurityContext: &v1.SecurityContext{RunAsUser: ptr.To[int64](1001)}}
	uid, gid, groups, err = containerIdentity(pod, c, image)
	if err != nil || uid != 1001 || gid != 2000 || !reflect.DeepEqual(groups, []int64{4000, 3000}) {
		t.Fatalf("security contexts: %d %d %v %v", uid, gid, groups, err)
	}
	c.SecurityContext = &v1.SecurityContext{RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(true)}
	if _, _, _, err := containerIdentity(pod, c, image); err == nil {
		t.Fatal("runAsNonRoot with uid 0 must be refused")
	}
}

func running() v1.ContainerState {
	return v1.ContainerState{Running: &v1.ContainerStateRunning{}}
}

func TestBuildPodStatus(t *testing.T) {
	pod := testPod()
	pod.Spec.RestartPolicy = v1.RestartPolicyAlways
	old := metav1.NewTime(time.Unix(100, 0))
	pod.Status.Conditions = []v1.PodCondition{
		{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: old},
		{Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: old},
	}
	now := metav1.NewTime(time.Unix(200, 0))
	snap := podSnapshot{sandboxReady: true, podIP: "10.244.1.2", hostIP: "10.244.0.1", containers: []containerRecord{
		{name: "server", state: running(), ready: true, started: ptr.To(true)},
		{name: "metrics", state: running(), ready: false, started: ptr.To(true)},
	}}
	st := buildPodStatus(pod, snap, now)
	if st.Phase != v1.PodRunning || st.PodIP != "10.244.1.2" || len(st.PodIPs) != 1 || st.HostIPs[0].IP != "10.244.0.1" {
		t.Fatalf("status %+v", st)
	}
	conds := map[v1.PodConditionType]v1.PodCondition{}
	for _, c := range st.Conditions {
		conds[c.Type] = c
	}
	if c := conds[v1.PodScheduled]; c.Status != v1.ConditionTrue || !c.LastTransitionTime.Equal(&old) {
		t.Errorf("PodScheduled must be kept as is: %+v", c)
	}
	if c := conds[v1.PodInitialized]; c.Status != v1.ConditionTrue || !c.LastTransitionTime.Equal(&old) {
		t.Errorf("an unchanged condition keeps its transition time: %+v", c)
	}
	if c := conds[v1.PodReady]; c.Status != v1.ConditionFalse || c.Reason != "ContainersNotReady" ||
		c.Message != "containers with unready status: [metrics]" || !c.LastTransitionTime.Equal(&now) {
		t.Errorf("Ready: %+v", c)
	}
	if c := conds[v1.PodReadyToStartContainers]; c.Status != v1.ConditionTrue {
		t.Errorf("PodReadyToStartContainers: %+v", c)
	}
	snap.containers[1].ready = true
	st = buildPodStatus(pod, snap, now)
	for _, c := range st.Conditions {
		if (c.Type == v1.PodReady || c.Type == v1.ContainersReady) && c.Status != v1.ConditionTrue {
			t.Errorf("all ready: %+v", c)
		}
	}
	// A crashed container waiting in back-off keeps the pod Running (it restarts).
	snap.containers[0] = containerRecord{name: "server",
		state:     v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		lastState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 137}}}
	if p := buildPodStatus(pod, snap, now).Phase; p != v1.PodRunning {
		t.Errorf("back-off phase %v", p)
	}
}

func TestPodPhase(t *testing.T) {
	term := func(code int32) containerRecord {
		return containerRecord{state: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}}}
	}
	waiting := containerRecord{state: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	cases := []struct {
		policy v1.RestartPolicy
		snap   podSnapshot
		want   v1.PodPhase
	}{
		{v1.RestartPolicyAlways, podSnapshot{containers: []containerRecord{waiting}}, v1.PodPending},
		{v1.RestartPolicyNever, podSnapshot{containers: []containerRecord{term(0), term(0)}}, v1.PodSucceeded},
		{v1.RestartPolicyNever, podSnapshot{containers: []containerRecord{term(0), term(1)}}, v1.PodFailed},
		{v1.RestartPolicyOnFailure, podSnapshot{containers: []containerRecord{term(1)}}, v1.PodRunning},
		{v1.RestartPolicyAlways, podSnapshot{containers: []containerRecord{term(0)}}, v1.PodRunning},
		{v1.RestartPolicyAlways, podSnapshot{containers: []containerRecord{term(0)}, terminated: true}, v1.PodSucceeded},
		{v1.RestartPolicyAlways, podSnapshot{containers: []containerRecord{term(143)}, terminated: true}, v1.PodFailed},
		{v1.RestartPolicyAlways, podSnapshot{init: []containerRecord{waiting}, containers: []containerRecord{waiting}}, v1.PodPending},
		{v1.RestartPolicyNever, podSnapshot{init: []containerRecord{term(1)}, containers: []containerRecord{waiting}}, v1.PodFailed},
	}
	for i, tc := range cases {
		if got := podPhase(tc.policy, tc.snap); got != tc.want {
			t.Errorf("case %d: phase %v, want %v", i, got, tc.want)
		}
	}
}

func TestNodeStatusKeepsTransitionTimes(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(100, 0))
	old := v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastTransitionTime: t0}}}
	now := metav1.NewTime(time.Unix(200, 0))
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("4")}
	st := nodeStatus(old, "10.244.0.1", "rf-node-1", 10251, alloc, now)
	if len(st.Conditions) != 4 {
		t.Fatalf("conditions %+v", st.Conditions)
	}
	for _, c := range st.Conditions {
		if !c.LastHeartbeatTime.Equal(&now) {
			t.Errorf("%s heartbeat %v", c.Type, c.LastHeartbeatTime)
		}
		if c.Type == v1.NodeReady && (c.Status != v1.ConditionTrue || !c.LastTransitionTime.Equal(&t0)) {
			t.Errorf("Ready %+v", c)
		}
	}
	if st.Addresses[0].Address != "10.244.0.1" || st.DaemonEndpoints.KubeletEndpoint.Port != 10251 ||
		st.NodeInfo.KubeletVersion != "v1.36.3" || st.Allocatable.Cpu().String() != "4" {
		t.Errorf("status %+v", st)
	}
}

func TestProbeCounterThresholds(t *testing.T) {
	c := &probeCounter{s: settingsOf(&v1.Probe{SuccessThreshold: 2, FailureThreshold: 3})}
	var verdicts []int
	for _, ok := range []bool{true, true, false, false, true, false, false, false} {
		verdicts = append(verdicts, c.observe(ok))
	}
	want := []int{0, 1, 0, 0, 0, 0, 0, -1}
	if !reflect.DeepEqual(verdicts, want) {
		t.Errorf("verdicts %v, want %v", verdicts, want)
	}
	s := settingsOf(&v1.Probe{})
	if s.period != 10*time.Second || s.timeout != time.Second || s.failureThreshold != 3 || s.successThreshold != 1 {
		t.Errorf("defaults %+v", s)
	}
}

func TestVolumeForClaim(t *testing.T) {
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "data-rf-0", UID: "u1"},
		Spec: v1.PersistentVolumeClaimSpec{Resources: v1.VolumeResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	pv := volumeForClaim(pvc, storageClass(), "rf-node-2", "/state/volumes")
	if pv.Name != "pvc-u1" || pv.Spec.Local.Path != "/state/volumes/pvc-u1" ||
		pv.Spec.ClaimRef.UID != "u1" || pv.Spec.ClaimRef.Name != "data-rf-0" ||
		pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete ||
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "rf-node-2" ||
		pv.Spec.AccessModes[0] != v1.ReadWriteOnce || pv.Spec.StorageClassName != "local-dir" {
		t.Errorf("pv %+v", pv)
	}
	q := pv.Spec.Capacity[v1.ResourceStorage]
	if q.String() != "1Gi" {
		t.Errorf("capacity %s", q.String())
	}
}

func TestMountPointsAreCountedAndRemoved(t *testing.T) {
	root := t.TempDir()
	h := newHostResources(t.TempDir())
	bin := filepath.Join(root, "usr", "local", "bin", "rf-server")
	a, err := h.ensureMountPoint(bin, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 4 { // usr, local, bin, rf-server
		t.Fatalf("created %v", a)
	}
	if st, err := os.Stat(bin); err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		t.Fatalf("file mount point: %v %v", st, err)
	}
	b, err := h.ensureMountPoint(bin, true) // a second pod shares it
	if err != nil || len(b) != 4 {
		t.Fatalf("second user: %v %v", b, err)
	}
	existing := filepath.Join(root, "etc")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := h.ensureMountPoint(filepath.Join(existing, "redis-failover"), false)
	if err != nil || len(c) != 1 {
		t.Fatalf("only the missing part is ours: %v %v", c, err)
	}
	h.release(a)
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("still used by the second pod, must stay")
	}
	h.release(b)
	if _, err := os.Stat(filepath.Join(root, "usr")); !os.IsNotExist(err) {
		t.Fatalf("unused mount points must go: %v", err)
	}
	// A leftover record from a crashed run is cleaned on start, pre-existing dirs kept.
	h2 := newHostResources(h.stateDir)
	h2.cleanLeftovers()
	if _, err := os.Stat(filepath.Join(existing, "redis-failover")); !os.IsNotExist(err) {
		t.Fatalf("leftover mount point kept: %v", err)
	}
	if _, err := os.Stat(existing); err != nil {
		t.Fatal("a directory the agent did not create must stay")
	}
}

func TestPidFileChecksStartTime(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.pid")
	if err := writePidFile(path, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if pid, ok := readPidFile(path); !ok || pid != os.Getpid() {
		t.Fatalf("own pid file: %d %v", pid, ok)
	}
	// The same pid with another start time is another process: leave it alone.
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d 1\n", os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := readPidFile(path); ok {
		t.Fatal("a reused pid must not match")
	}
}

func TestExecStreamsAndExitStatus(t *testing.T) {
	s := execStreamsOf(map[string][]string{"input": {"1"}, "output": {"1"}, "error": {"1"}})
	if !s.stdin || !s.stdout || !s.stderr || s.tty || s.expected() != 4 {
		t.Errorf("streams %+v expected %d", s, s.expected())
	}
	s = execStreamsOf(map[string][]string{"output": {"1"}, "error": {"1"}, "tty": {"true"}})
	if s.stderr || !s.tty || s.expected() != 3 { // error, stdout, resize
		t.Errorf("tty streams %+v expected %d", s, s.expected())
	}
	if st := exitStatus(nil); st.Status != metav1.StatusSuccess {
		t.Errorf("success status %+v", st)
	}
	err := exec.Command("sh", "-c", "exit 3").Run()
	st := exitStatus(err)
	if st.Status != metav1.StatusFailure || st.Reason != "NonZeroExitCode" ||
		st.Details == nil || st.Details.Causes[0].Type != "ExitCode" || st.Details.Causes[0].Message != "3" {
		t.Errorf("exit status %+v", st)
	}
}

func TestEndedPodIsNotStartedAgain(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(filepath.Join(dir, "rf-node-1.kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.244.1.0/24")
	cfg := &config{kubeconfigDir: dir, podCIDRs: []*net.IPNet{cidr}, gateway: net.ParseIP("10.244.0.1").To4()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := newNodeAgent(ctx, cfg, 0, "rf-node-1", "/bin/false", nil, newHostResources(dir), 16)
	if err != nil {
		t.Fatal(err)
	}
	pod := testPod()
	pod.Spec.NodeName = "rf-node-1"
	pod.Status.Phase = v1.PodRunning
	n.workerEnded(pod.UID, time.Now())
	n.podUpdated(pod) // a late update of the pod whose worker just ended
	n.mu.Lock()
	started := len(n.workers)
	n.mu.Unlock()
	if started != 0 {
		t.Fatal("a pod whose worker ended must not start again")
	}
	n.workerEnded("other", time.Now().Add(11*time.Minute))
	if _, kept := n.finished[pod.UID]; kept {
		t.Error("records older than 10 minutes are pruned")
	}
}

func TestKeyedVolumeMissingItemKey(t *testing.T) {
	items := []v1.KeyToPath{{Key: "absent", Path: "x"}}
	_, err := keyedVolumePayload(objects(), kindConfigMapSource, "ns1", "cfg", items, nil, nil)
	if err == nil || err.Error() != "configmap references non-existent config key: absent" {
		t.Errorf("configmap: %v", err)
	}
	_, err = keyedVolumePayload(objects(), kindSecretSource, "ns1", "pw", items, nil, nil)
	if err == nil || err.Error() != "references non-existent secret key: absent" {
		t.Errorf("secret: %v", err)
	}
	payload, err := keyedVolumePayload(objects(), kindSecretSource, "ns1", "pw", items, nil, ptr.To(true))
	if err != nil || len(payload) != 0 {
		t.Errorf("optional: %v %v", payload, err)
	}
}
