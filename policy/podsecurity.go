package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
)

// PodSecurity judges whether a pod can reach its node: whether it meets the Pod Security
// Standards' baseline level, judged by kube-apiserver's own Pod Security Admission checks. The
// baseline level is the one that "prevents known privilege escalations": privileged containers,
// host namespaces, hostPath volumes, host ports, capabilities outside a short allow-list, unsafe
// sysctls, unmasked /proc, and unconfined seccomp, AppArmor or SELinux. A shell in a pod that
// fails it is as good as a shell on its node.
//
// Capabilities are normalised as container runtimes do before they are judged: upper-cased
// and without a "CAP_" prefix, so that "CAP_SYS_ADMIN" and "sys_admin" are SYS_ADMIN. The
// allow-list itself is baseline's (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD,
// NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT): anything else added, in any
// spelling, is privileged.
type PodSecurity struct {
	eval psapolicy.Evaluator
}

// NewPodSecurity returns a PodSecurity judging by the latest baseline level this build of the
// Pod Security Admission library knows.
func NewPodSecurity() (*PodSecurity, error) {
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("policy: pod security checks: %w", err)
	}
	return &PodSecurity{eval: eval}, nil
}

// Violations returns why pod fails the baseline level, one entry per failed check with its
// details ("non-default capabilities (container \"app\": SYS_ADMIN)"), or nothing when it meets
// it. pod is not modified.
func (s *PodSecurity) Violations(pod *corev1.Pod) []string {
	spec := normalizedCapabilities(&pod.Spec)
	results := s.eval.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelBaseline, Version: psaapi.LatestVersion()}, &pod.ObjectMeta, spec)
	var out []string
	for _, r := range results {
		if r.Allowed {
			continue
		}
		reason := r.ForbiddenReason
		if r.ForbiddenDetail != "" {
			reason += " (" + r.ForbiddenDetail + ")"
		}
		out = append(out, reason)
	}
	return out
}

// normalizedCapabilities returns spec, or a copy of it whose added capabilities are spelled as
// container runtimes read them.
func normalizedCapabilities(spec *corev1.PodSpec) *corev1.PodSpec {
	needs := false
	visitSecurityContexts(spec, func(sc *corev1.SecurityContext) {
		for _, c := range sc.Capabilities.Add {
			if normalizeCapability(c) != c {
				needs = true
			}
		}
	})
	if !needs {
		return spec
	}
	spec = spec.DeepCopy()
	visitSecurityContexts(spec, func(sc *corev1.SecurityContext) {
		for i, c := range sc.Capabilities.Add {
			sc.Capabilities.Add[i] = normalizeCapability(c)
		}
	})
	return spec
}

// normalizeCapability spells a capability as runtimes (containerd, CRI-O) interpret it.
func normalizeCapability(c corev1.Capability) corev1.Capability {
	s := strings.ToUpper(strings.TrimSpace(string(c)))
	return corev1.Capability(strings.TrimPrefix(s, "CAP_"))
}

// visitSecurityContexts calls f with the security context of every container, init container
// and ephemeral container that adds capabilities.
func visitSecurityContexts(spec *corev1.PodSpec, f func(*corev1.SecurityContext)) {
	visit := func(sc *corev1.SecurityContext) {
		if sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			f(sc)
		}
	}
	for i := range spec.InitContainers {
		visit(spec.InitContainers[i].SecurityContext)
	}
	for i := range spec.Containers {
		visit(spec.Containers[i].SecurityContext)
	}
	for i := range spec.EphemeralContainers {
		visit(spec.EphemeralContainers[i].SecurityContext)
	}
}
