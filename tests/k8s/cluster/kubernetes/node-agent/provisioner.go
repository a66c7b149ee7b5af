package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	storageClassName = "local-dir"
	provisionerName  = "redis-failover.io/local-dir"
	annSelectedNode  = "volume.kubernetes.io/selected-node"
	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
	annDefaultClass  = "storageclass.kubernetes.io/is-default-class"
)

// provisioner is the local volume provisioner: a directory under <state-dir>/volumes per
// claim of the local-dir class, on the node the scheduler picked.
type provisioner struct {
	client  kubernetes.Interface
	baseDir string
	queue   workqueue.TypedRateLimitingInterface[string]
}

func newProvisioner(cfg *config) (*provisioner, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.provisionerKubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "node-agent/local-dir-provisioner"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &provisioner{
		client:  client,
		baseDir: filepath.Join(cfg.stateDir, "volumes"),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}, nil
}

// storageClass is the default class the provisioner serves.
func storageClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClassName,
			Annotations: map[string]string{annDefaultClass: "true"},
		},
		Provisioner:       provisionerName,
		ReclaimPolicy:     ptr.To(v1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

func (p *provisioner) run(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		_, err := p.client.StorageV1().StorageClasses().Create(ctx, storageClass(), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			klog.Errorf("provisioner: storage class: %v", err)
			return
		}
		p.watch(ctx)
	}, 2*time.Second)
}

func (p *provisioner) watch(ctx context.Context) {
	factory := informers.NewSharedInformerFactory(p.client, 5*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	enqueue := func(prefix string) func(obj interface{}) {
		return func(obj interface{}) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				p.queue.Add(prefix + key)
			}
		}
	}
	handler := func(prefix string) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue(prefix),
			UpdateFunc: func(_, obj interface{}) { enqueue(prefix)(obj) },
		}
	}
	_, _ = claims.Informer().AddEventHandler(handler("pvc:"))
	_, _ = volumes.Informer().AddEventHandler(handler("pv:"))
	classes := factory.Storage().V1().StorageClasses()
	_ = classes.Informer()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go func() { <-ctx.Done(); p.queue.ShutDown() }()
	for {
		key, quit := p.queue.Get()
		if quit {
			return
		}
		var err error
		switch {
		case strings.HasPrefix(key, "pvc:"):
			err = p.syncClaim(ctx, strings.TrimPrefix(key, "pvc:"), claims.Lister(), classes.Lister())
		case strings.HasPrefix(key, "pv:"):
			err = p.syncVolume(ctx, strings.TrimPrefix(key, "pv:"), volumes.Lister().Get)
		}
		if err != nil {
			klog.Errorf("provisioner: %s: %v", key, err)
			p.queue.AddRateLimited(key)
		} else {
			p.queue.Forget(key)
		}
		p.queue.Done(key)
	}
}

func (p *provisioner) syncClaim(ctx context.Context, key string, claims corelisters.PersistentVolumeClaimLister, classes storagelisters.StorageClassLister) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	node := pvc.Annotations[annSelectedNode]
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != storageClassName ||
		node == "" || pvc.Spec.VolumeName != "" || pvc.Status.Phase != v1.ClaimPending || pvc.DeletionTimestamp != nil {
		return nil
	}
	class, err := classes.Get(storageClassName)
	if err != nil {
		return err
	}
	pv := volumeForClaim(pvc, class, node, p.baseDir)
	if err := os.MkdirAll(pv.Spec.Local.Path, 0o755); err != nil {
		return err
	}
	_, err = p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		klog.Infof("provisioner: %s for claim %s on %s", pv.Name, key, node)
	}
	return err
}

// volumeForClaim is the PV the provisioner makes for a claim: a local directory on the
// selected node, pre-bound to the claim.
func volumeForClaim(pvc *v1.PersistentVolumeClaim, class *storagev1.StorageClass, node, baseDir string) *v1.PersistentVolume {
	name := "pvc-" + string(pvc.UID)
	policy := v1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		policy = *class.ReclaimPolicy
	}
	capacity := pvc.Spec.Resources.Requests[v1.ResourceStorage]
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
	}
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisionedBy: provisionerName},
		},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: capacity},
			AccessModes:                   modes,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: policy,
			StorageClassName:              class.Name,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: filepath.Join(baseDir, name)},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
			ClaimRef: &v1.ObjectReference{
				APIVersion: "v1", Kind: "PersistentVolumeClaim",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
		},
	}
}

// syncVolume deletes a released PV of ours whose policy is Delete, with its directory.
func (p *provisioner) syncVolume(ctx context.Context, name string, get func(string) (*v1.PersistentVolume, error)) error {
	pv, err := get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.Annotations[annProvisionedBy] != provisionerName || pv.Status.Phase != v1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete || pv.Spec.Local == nil {
		return nil
	}
	dir := pv.Spec.Local.Path
	if filepath.Dir(dir) != p.baseDir {
		return fmt.Errorf("refusing to delete %s: not under %s", dir, p.baseDir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	err = p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pv.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil // a second sync of the same release
	}
	if err != nil {
		return err
	}
	klog.Infof("provisioner: deleted released %s and %s", pv.Name, dir)
	return nil
}
