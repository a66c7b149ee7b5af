package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// objectSource reads the Secrets and ConfigMaps a pod refers to (through the node's
// identity, which the Node authorizer limits to its own pods' objects).
type objectSource interface {
	secret(namespace, name string) (*v1.Secret, error)
	configMap(namespace, name string) (*v1.ConfigMap, error)
}

// podRuntimeInfo is what the pod's environment needs beyond its spec.
type podRuntimeInfo struct {
	podIP, hostIP   string
	nodeAllocatable v1.ResourceList
}

// configError is a container configuration problem: the container waits with reason
// CreateContainerConfigError until it is fixed.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// serviceEnv is the kubelet's service-link environment: the master "kubernetes" Service of
// the default namespace always, the pod namespace's Services when enableServiceLinks.
func serviceEnv(pod *v1.Pod, services []*v1.Service) map[string]string {
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	byName := map[string]*v1.Service{}
	for _, s := range services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		if s.Namespace == pod.Namespace && links {
			byName[s.Name] = s
		}
	}
	for _, s := range services {
		if s.Namespace == "default" && s.Name == "kubernetes" && s.Spec.ClusterIP != "" {
			if _, exists := byName[s.Name]; !exists {
				byName[s.Name] = s
			}
		}
	}
	list := make([]*v1.Service, 0, len(byName))
	for _, s := range byName {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	out := map[string]string{}
	for _, e := range envvars.FromServices(list) {
		out[e.Name] = e.Value
	}
	return out
}

// containerEnv builds a container's environment as the kubelet's makeEnvironmentVariables
// does: envFrom, then env with $(VAR) expansion against what precedes it and the service
// variables, then the service variables not overridden.
func containerEnv(pod *v1.Pod, c *v1.Container, svcEnv map[string]string, src objectSource, info podRuntimeInfo) ([]string, error) {
	tmp := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := tmp[k]; !ok {
			order = append(order, k)
		}
		tmp[k] = v
	}
	for _, from := range c.EnvFrom {
		kind, name, optional := kindConfigMapSource, "", false
		switch {
		case from.ConfigMapRef != nil:
			name, optional = from.ConfigMapRef.Name, from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		case from.SecretRef != nil:
			kind = kindSecretSource
			name, optional = from.SecretRef.Name, from.SecretRef.Optional != nil && *from.SecretRef.Optional
		default:
			continue
		}
		data, err := keyedData(src, kind, pod.Namespace, name, false)
		if err != nil {
			if optional && apierrors.IsNotFound(err) {
				continue
			}
			return nil, &configError{notFound(kind, name)}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, string(data[k]))
		}
	}
	mapping := expansion.MappingFuncFor(tmp, svcEnv)
	for _, e := range c.Env {
		value := e.Value
		switch {
		case value != "":
			value = expansion.Expand(value, mapping)
		case e.ValueFrom != nil:
			v, skip, err := envValueFrom(pod, c, e.ValueFrom, src, info)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			value = v
		}
		set(e.Name, value)
	}
	for _, k := range sortedKeys(svcEnv) {
		if _, ok := tmp[k]; !ok {
			order = append(order, k)
			tmp[k] = svcEnv[k]
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+tmp[k])
	}
	return out, nil
}

// processEnv is the environment the process gets: the image's ENV (with Docker's default
// PATH) and HOSTNAME, each yielding to the container's own variables.
func processEnv(image imageConfig, hostname string, containerEnv []string) []string {
	var out []string
	base := append([]string{}, image.Env...)
	if !hasEnv(base, "PATH") {
		base = append(base, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	base = append(base, "HOSTNAME="+hostname)
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !hasEnv(containerEnv, k) {
			out = append(out, kv)
		}
	}
	return append(out, containerEnv...)
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// envValueFrom resolves one valueFrom; skip means an optional source is absent.
func envValueFrom(pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource, src objectSource, info podRuntimeInfo) (value string, skip bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := podFieldValue(pod, from.FieldRef.FieldPath, info)
		if err != nil {
			return "", false, &configError{err.Error()}
		}
		return v, false, nil
	case from.ResourceFieldRef != nil:
		v, err := containerResourceValue(pod, c.Name, from.ResourceFieldRef, info.nodeAllocatable)
		if err != nil {
			return "", false, &configError{err.Error()}
		}
		return v, false, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		return keyValue(src, kindConfigMapSource, pod.Namespace, ref.Name, ref.Key, ref.Optional != nil && *ref.Optional)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		return keyValue(src, kindSecretSource, pod.Namespace, ref.Name, ref.Key, ref.Optional != nil && *ref.Optional)
	}
	return "", true, nil
}

// The two keyed sources, named as in the kubelet's messages.
const (
	kindConfigMapSource = "ConfigMap"
	kindSecretSource    = "Secret"
)

// keyedData reads a ConfigMap (its data, and binaryData when withBinary, as volumes use it)
// or a Secret as key -> bytes.
func keyedData(src objectSource, kind, namespace, name string, withBinary bool) (map[string][]byte, error) {
	if kind == kindSecretSource {
		s, err := src.secret(namespace, name)
		if err != nil {
			return nil, err
		}
		return s.Data, nil
	}
	cm, err := src.configMap(namespace, name)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	if withBinary {
		for k, v := range cm.BinaryData {
			data[k] = v
		}
	}
	return data, nil
}

// notFound is the kubelet's message for a missing ConfigMap or Secret.
func notFound(kind, name string) string {
	return fmt.Sprintf("%s %q not found", strings.ToLower(kind), name)
}

// keyValue resolves a configMapKeyRef or secretKeyRef; skip when it is optional and absent.
func keyValue(src objectSource, kind, namespace, name, key string, optional bool) (value string, skip bool, err error) {
	data, err := keyedData(src, kind, namespace, name, false)
	if err != nil {
		if optional && apierrors.IsNotFound(err) {
			return "", true, nil
		}
		return "", false, &configError{notFound(kind, name)}
	}
	v, ok := data[key]
	if !ok {
		if optional {
			return "", true, nil
		}
		return "", false, &configError{fmt.Sprintf("couldn't find key %s in %s %s/%s", key, kind, namespace, name)}
	}
	return string(v), false, nil
}

// podFieldValue is the kubelet's podFieldSelectorRuntimeValue.
func podFieldValue(pod *v1.Pod, path string, info podRuntimeInfo) (string, error) {
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return info.hostIP, nil
	case "status.podIP", "status.podIPs":
		return info.podIP, nil
	}
	return fieldpath.ExtractFieldPathAsString(pod, path)
}

// containerResourceValue resolves a resourceFieldRef; a missing limit is the node's
// allocatable amount, as the kubelet does.
func containerResourceValue(pod *v1.Pod, containerName string, ref *v1.ResourceFieldSelector, allocatable v1.ResourceList) (string, error) {
	name := containerName
	if ref.ContainerName != "" {
		name = ref.ContainerName
	}
	var c *v1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		return "", fmt.Errorf("container %q not found for resourceFieldRef", name)
	}
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, found := list[v1.ResourceName(res)]
	if !found {
		q, found = allocatable[v1.ResourceName(res)]
	}
	if !found {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == "cpu" {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

// containerArgv combines the image's ENTRYPOINT/CMD with the spec's command/args as Docker
// and the kubelet do, expanding $(VAR) in command and args against the final environment.
func containerArgv(c *v1.Container, image imageConfig, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	mapping := expansion.MappingFuncFor(vars)
	expand := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = expansion.Expand(s, mapping)
		}
		return out
	}
	command, args := expand(c.Command), expand(c.Args)
	switch {
	case len(c.Command) > 0:
		return append(command, args...)
	case len(c.Args) > 0:
		return append(append([]string{}, image.Entrypoint...), args...)
	default:
		return append(append([]string{}, image.Entrypoint...), image.Cmd...)
	}
}
