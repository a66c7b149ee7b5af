package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/kubernetes/pkg/fieldpath"
)

// volumeSource is what the pod's volumes read from the API.
type volumeSource interface {
	objectSource
	pvc(namespace, name string) (*v1.PersistentVolumeClaim, error)
	pv(name string) (*v1.PersistentVolume, error)
	// token returns a bound service account token of the pod, refreshed at 80% of its life.
	token(pod *v1.Pod, audience string, expirationSeconds int64) (string, error)
}

// Volume kinds, named as the kubelet names its plugin directories.
const (
	kindConfigMap   = "kubernetes.io~configmap"
	kindSecret      = "kubernetes.io~secret"
	kindProjected   = "kubernetes.io~projected"
	kindDownwardAPI = "kubernetes.io~downward-api"
	kindEmptyDir    = "kubernetes.io~empty-dir"
)

// mountedVolume is a volume's directory on the host and whether containers see it read-only.
type mountedVolume struct {
	hostPath string
	readOnly bool
}

// volumeDir is <pod dir>/volumes/<kind>/<name>.
func volumeDir(podDir, kind, name string) string {
	return filepath.Join(podDir, "volumes", kind, name)
}

// prepareVolumes materialises every volume of the pod; firstTime also applies fsGroup
// ownership to writable volumes (emptyDir, PVs). Atomic-writer volumes are rewritten only
// when their content changed, so calling it again refreshes them.
func prepareVolumes(pod *v1.Pod, podDir string, src volumeSource, info podRuntimeInfo, firstTime bool, now time.Time) (map[string]mountedVolume, error) {
	out := map[string]mountedVolume{}
	var errs []error
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		mv, err := prepareVolume(pod, vol, podDir, src, info, fsGroup, firstTime, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", vol.Name, err))
			continue
		}
		out[vol.Name] = mv
	}
	return out, errors.Join(errs...)
}

func prepareVolume(pod *v1.Pod, vol *v1.Volume, podDir string, src volumeSource, info podRuntimeInfo, fsGroup *int64, firstTime bool, now time.Time) (mountedVolume, error) {
	writeProjected := func(kind string, payload map[string]fileProjection) (mountedVolume, error) {
		dir := volumeDir(podDir, kind, vol.Name)
		wrote, err := writeAtomically(dir, payload, now)
		if err != nil {
			return mountedVolume{}, err
		}
		if wrote && fsGroup != nil {
			if err := setVolumeOwnership(dir, *fsGroup, true); err != nil {
				return mountedVolume{}, err
			}
		}
		return mountedVolume{hostPath: dir, readOnly: true}, nil
	}
	switch {
	case vol.ConfigMap != nil:
		payload, err := keyedVolumePayload(src, kindConfigMapSource, pod.Namespace, vol.ConfigMap.Name, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode, vol.ConfigMap.Optional)
		if err != nil {
			return mountedVolume{}, err
		}
		return writeProjected(kindConfigMap, payload)
	case vol.Secret != nil:
		payload, err := keyedVolumePayload(src, kindSecretSource, pod.Namespace, vol.Secret.SecretName, vol.Secret.Items, vol.Secret.DefaultMode, vol.Secret.Optional)
		if err != nil {
			return mountedVolume{}, err
		}
		return writeProjected(kindSecret, payload)
	case vol.DownwardAPI != nil:
		payload, err := downwardAPIPayload(pod, vol.DownwardAPI.Items, vol.DownwardAPI.DefaultMode, info)
		if err != nil {
			return mountedVolume{}, err
		}
		return writeProjected(kindDownwardAPI, payload)
	case vol.Projected != nil:
		payload, err := projectedPayload(pod, vol.Projected, src, info)
		if err != nil {
			return mountedVolume{}, err
		}
		return writeProjected(kindProjected, payload)
	case vol.EmptyDir != nil:
		dir := volumeDir(podDir, kindEmptyDir, vol.Name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return mountedVolume{}, err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return mountedVolume{}, err
		}
		if firstTime && fsGroup != nil {
			if err := setVolumeOwnership(dir, *fsGroup, false); err != nil {
				return mountedVolume{}, err
			}
		}
		return mountedVolume{hostPath: dir}, nil
	case vol.PersistentVolumeClaim != nil:
		dir, err := claimPath(pod.Namespace, vol.PersistentVolumeClaim.ClaimName, src)
		if err != nil {
			return mountedVolume{}, err
		}
		if firstTime && fsGroup != nil {
			if err := setVolumeOwnership(dir, *fsGroup, false); err != nil {
				return mountedVolume{}, err
			}
		}
		return mountedVolume{hostPath: dir, readOnly: vol.PersistentVolumeClaim.ReadOnly}, nil
	case vol.HostPath != nil:
		t := v1.HostPathUnset
		if vol.HostPath.Type != nil {
			t = *vol.HostPath.Type
		}
		switch t {
		case v1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(vol.HostPath.Path, 0o755); err != nil {
				return mountedVolume{}, err
			}
		case v1.HostPathFileOrCreate:
			f, err := os.OpenFile(vol.HostPath.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return mountedVolume{}, err
			}
			f.Close()
		}
		if _, err := os.Stat(vol.HostPath.Path); err != nil && t != v1.HostPathUnset {
			return mountedVolume{}, err
		}
		return mountedVolume{hostPath: vol.HostPath.Path}, nil
	}
	return mountedVolume{}, fmt.Errorf("volume type not supported by the node agent")
}

// claimPath is the directory of the PV bound to a claim.
func claimPath(namespace, claim string, src volumeSource) (string, error) {
	pvc, err := src.pvc(namespace, claim)
	if err != nil {
		return "", err
	}
	if pvc.Status.Phase != v1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound yet", claim)
	}
	pv, err := src.pv(pvc.Spec.VolumeName)
	if err != nil {
		return "", err
	}
	var dir string
	switch {
	case pv.Spec.Local != nil:
		dir = pv.Spec.Local.Path
	case pv.Spec.HostPath != nil:
		dir = pv.Spec.HostPath.Path
	default:
		return "", fmt.Errorf("persistentvolume %q is neither local nor hostPath", pv.Name)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("persistentvolume %q: directory %s is missing", pv.Name, dir)
	}
	return dir, nil
}

func modeOr(mode *int32, def int32) os.FileMode {
	if mode != nil {
		return os.FileMode(*mode)
	}
	return os.FileMode(def)
}

// keyedPayload maps keys to files: every key, or only the items (a missing item key is an
// error unless the source is optional).
func keyedPayload(data map[string][]byte, items []v1.KeyToPath, defaultMode os.FileMode, optional bool, kind string) (map[string]fileProjection, error) {
	payload := map[string]fileProjection{}
	if len(items) == 0 {
		for k, v := range data {
			payload[k] = fileProjection{data: v, mode: defaultMode}
		}
		return payload, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			if kind == kindSecretSource {
				return nil, fmt.Errorf("references non-existent secret key: %s", it.Key)
			}
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		payload[it.Path] = fileProjection{data: v, mode: modeOr(it.Mode, int32(defaultMode))}
	}
	return payload, nil
}

// keyedVolumePayload is the payload of a configMap or secret volume (or projection).
func keyedVolumePayload(src objectSource, kind, namespace, name string, items []v1.KeyToPath, defaultMode *int32, optional *bool) (map[string]fileProjection, error) {
	opt := optional != nil && *optional
	data, err := keyedData(src, kind, namespace, name, true)
	if err != nil {
		if opt && apierrors.IsNotFound(err) {
			return map[string]fileProjection{}, nil
		}
		return nil, errors.New(notFound(kind, name))
	}
	return keyedPayload(data, items, modeOr(defaultMode, 0o644), opt, kind)
}

func downwardAPIPayload(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, defaultMode *int32, info podRuntimeInfo) (map[string]fileProjection, error) {
	payload := map[string]fileProjection{}
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = fieldpath.ExtractFieldPathAsString(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			value, err = containerResourceValue(pod, it.ResourceFieldRef.ContainerName, it.ResourceFieldRef, info.nodeAllocatable)
		}
		if err != nil {
			return nil, err
		}
		payload[it.Path] = fileProjection{data: []byte(value), mode: modeOr(it.Mode, int32(modeOr(defaultMode, 0o644)))}
	}
	return payload, nil
}

func projectedPayload(pod *v1.Pod, p *v1.ProjectedVolumeSource, src volumeSource, info podRuntimeInfo) (map[string]fileProjection, error) {
	defaultMode := modeOr(p.DefaultMode, 0o644)
	payload := map[string]fileProjection{}
	merge := func(part map[string]fileProjection) {
		for k, v := range part {
			payload[k] = v
		}
	}
	for _, s := range p.Sources {
		mode := int32(defaultMode)
		switch {
		case s.ConfigMap != nil:
			part, err := keyedVolumePayload(src, kindConfigMapSource, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, &mode, s.ConfigMap.Optional)
			if err != nil {
				return nil, err
			}
			merge(part)
		case s.Secret != nil:
			part, err := keyedVolumePayload(src, kindSecretSource, pod.Namespace, s.Secret.Name, s.Secret.Items, &mode, s.Secret.Optional)
			if err != nil {
				return nil, err
			}
			merge(part)
		case s.DownwardAPI != nil:
			part, err := downwardAPIPayload(pod, s.DownwardAPI.Items, &mode, info)
			if err != nil {
				return nil, err
			}
			merge(part)
		case s.ServiceAccountToken != nil:
			t := s.ServiceAccountToken
			exp := int64(3600)
			if t.ExpirationSeconds != nil {
				exp = *t.ExpirationSeconds
			}
			tok, err := src.token(pod, t.Audience, exp)
			if err != nil {
				return nil, fmt.Errorf("failed to fetch token: %w", err)
			}
			payload[t.Path] = fileProjection{data: []byte(tok), mode: defaultMode}
		default:
			return nil, fmt.Errorf("projected source not supported by the node agent")
		}
	}
	return payload, nil
}

// setVolumeOwnership is the kubelet's fsGroup handling: every file and directory gets the
// group fsGroup and group read (and write unless readOnly); directories also get setgid
// and group search. Symlinks are left alone.
func setVolumeOwnership(dir string, fsGroup int64, readOnly bool) error {
	mask := os.FileMode(0o660)
	if readOnly {
		mask = 0o440
	}
	return filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(path, -1, int(fsGroup)); err != nil {
			return err
		}
		m := info.Mode() | mask
		if info.IsDir() {
			m |= os.ModeSetgid | 0o110
		}
		return os.Chmod(path, m)
	})
}

// isSubPathSafe refuses a subPath that is absolute or climbs out of its volume.
func isSubPathSafe(sub string) bool {
	if filepath.IsAbs(sub) {
		return false
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return false
		}
	}
	return true
}
