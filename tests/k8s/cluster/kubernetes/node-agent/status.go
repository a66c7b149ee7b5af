package main

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerRecord is the agent's view of one container, turned into a ContainerStatus.
type containerRecord struct {
	name         string
	image        string
	imageID      string
	containerID  string
	state        v1.ContainerState
	lastState    v1.ContainerState
	ready        bool
	started      *bool
	restartCount int32
}

func (r *containerRecord) status() v1.ContainerStatus {
	return v1.ContainerStatus{
		Name:                 r.name,
		Image:                r.image,
		ImageID:              r.imageID,
		ContainerID:          r.containerID,
		State:                r.state,
		LastTerminationState: r.lastState,
		Ready:                r.ready,
		Started:              r.started,
		RestartCount:         r.restartCount,
	}
}

// podSnapshot is the agent's view of a pod at one moment.
type podSnapshot struct {
	sandboxReady bool
	podIP        string
	hostIP       string
	startTime    *metav1.Time
	init         []containerRecord
	containers   []containerRecord
	// terminated: the pod was deleted or ran to completion and nothing restarts any more.
	terminated bool
}

// Conditions the kubelet owns; the rest (PodScheduled, DisruptionTarget...) are kept.
var kubeletConditions = map[v1.PodConditionType]bool{
	v1.PodReadyToStartContainers: true,
	v1.PodInitialized:            true,
	v1.ContainersReady:           true,
	v1.PodReady:                  true,
}

// buildPodStatus computes the pod status the kubelet would report.
func buildPodStatus(pod *v1.Pod, snap podSnapshot, now metav1.Time) v1.PodStatus {
	st := v1.PodStatus{
		HostIP:    snap.hostIP,
		PodIP:     snap.podIP,
		StartTime: snap.startTime,
		QOSClass:  pod.Status.QOSClass,
	}
	if snap.hostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: snap.hostIP}}
	}
	if snap.podIP != "" {
		st.PodIPs = []v1.PodIP{{IP: snap.podIP}}
	}
	for i := range snap.init {
		st.InitContainerStatuses = append(st.InitContainerStatuses, snap.init[i].status())
	}
	for i := range snap.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, snap.containers[i].status())
	}
	st.Phase = podPhase(pod.Spec.RestartPolicy, snap)

	var incompleteInit, unready []string
	for _, r := range snap.init {
		if r.state.Terminated == nil || r.state.Terminated.ExitCode != 0 {
			incompleteInit = append(incompleteInit, r.name)
		}
	}
	for _, r := range snap.containers {
		if !r.ready {
			unready = append(unready, r.name)
		}
	}
	completed := st.Phase == v1.PodSucceeded
	cond := func(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
		c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason, Message: msg}
		if ok {
			c = v1.PodCondition{Type: t, Status: v1.ConditionTrue}
		}
		return c
	}
	initialized := cond(v1.PodInitialized, len(incompleteInit) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incompleteInit, " ")))
	if completed {
		initialized = cond(v1.PodInitialized, true, "", "")
	}
	readyReason, readyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if completed {
		readyReason, readyMsg = "PodCompleted", ""
	}
	allReady := len(unready) == 0 && !completed && !snap.terminated
	ready := allReady
	for _, g := range pod.Spec.ReadinessGates {
		if !hasTrueCondition(pod.Status.Conditions, g.ConditionType) {
			ready = false
		}
	}
	mine := []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, snap.sandboxReady && !snap.terminated, "", ""),
		initialized,
		cond(v1.ContainersReady, allReady, readyReason, readyMsg),
		cond(v1.PodReady, ready, readyReason, readyMsg),
	}
	for _, old := range pod.Status.Conditions {
		if !kubeletConditions[old.Type] {
			st.Conditions = append(st.Conditions, old)
		}
	}
	for _, c := range mine {
		c.LastTransitionTime = now
		for _, old := range pod.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	return st
}

func hasTrueCondition(conds []v1.PodCondition, t v1.PodConditionType) bool {
	for _, c := range conds {
		if c.Type == t && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

// podPhase is the kubelet's getPhase.
func podPhase(policy v1.RestartPolicy, snap podSnapshot) v1.PodPhase {
	for _, r := range snap.init {
		if t := r.state.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		if t := r.state.Terminated; t != nil && policy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		if r.state.Waiting != nil && r.lastState.Terminated != nil && policy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, r := range snap.containers {
		switch {
		case r.state.Running != nil:
			running++
		case r.state.Terminated != nil:
			stopped++
			if r.state.Terminated.ExitCode == 0 {
				succeeded++
			}
		case r.state.Waiting != nil && r.lastState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		if snap.terminated {
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
		if policy == v1.RestartPolicyAlways {
			return v1.PodRunning // every container is restarting
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if policy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning
	}
	return v1.PodPending
}
