package enricher

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// Defaults of the attribution options.
var (
	// DefaultAgentGroups are the groups whose members are agents (actor_kind agent).
	DefaultAgentGroups = []string{"agents"}
	// DefaultControlPlaneNamespaces are the namespaces whose service accounts are part of the
	// control plane (actor_kind control-plane): Kubernetes' own and Gatehouse's.
	DefaultControlPlaneNamespaces = []string{"kube-system", "gatehouse"}
	// DefaultAdmissionWebhooks are the names of Gatehouse's validating webhooks
	// (the configurations in manifests/webhook/configurations.yaml), whose audit annotations
	// name their decisions.
	DefaultAdmissionWebhooks = []string{
		"connect.validate.gatehouse.dev",
		"privileged.validate.gatehouse.dev",
		"cluster.validate.gatehouse.dev",
		"held.validate.gatehouse.dev",
		"general.validate.gatehouse.dev",
	}
)

// Actor kinds: who acted, as auditors tell them apart. The SQL default of audit_events.actor_kind
// (migration 6) classifies rows stored before the column existed the same way, with the default
// options.
const (
	ActorHuman          = "human"
	ActorAgent          = "agent"
	ActorServiceAccount = "service-account"
	ActorControlPlane   = "control-plane"
	ActorAnonymous      = "anonymous"
)

// attribution classifies the rows of audit events.
type attribution struct {
	// trusted are the users whose impersonation extras are the gateway's (any, when empty).
	trusted map[string]bool
	// agentGroups: members are agents.
	agentGroups map[string]bool
	// controlPlaneSA are the service-account user name prefixes of the control-plane namespaces.
	controlPlaneSA []string
	// webhooks are the validating webhooks whose audit annotations are Gatehouse's.
	webhooks map[string]bool
}

func newAttribution(o *Options) *attribution {
	a := &attribution{trusted: map[string]bool{}, agentGroups: map[string]bool{}, webhooks: map[string]bool{}}
	for _, u := range o.GatewayUsers {
		a.trusted[u] = true
	}
	for _, g := range o.AgentGroups {
		a.agentGroups[g] = true
	}
	for _, ns := range o.ControlPlaneNamespaces {
		a.controlPlaneSA = append(a.controlPlaneSA, "system:serviceaccount:"+ns+":")
	}
	for _, w := range o.AdmissionWebhooks {
		a.webhooks[w] = true
	}
	return a
}

// actorKind classifies the identity a request ran as.
func (a *attribution) actorKind(user string, groups []string) string {
	switch {
	case user == "system:anonymous":
		return ActorAnonymous
	case user == "system:apiserver", strings.HasPrefix(user, "system:kube-"), strings.HasPrefix(user, "system:node:"),
		slices.Contains(groups, "system:nodes"), a.trusted[user]:
		return ActorControlPlane
	}
	if strings.HasPrefix(user, "system:serviceaccount:") {
		for _, p := range a.controlPlaneSA {
			if strings.HasPrefix(user, p) {
				return ActorControlPlane
			}
		}
		return ActorServiceAccount
	}
	for _, g := range groups {
		if a.agentGroups[g] {
			return ActorAgent
		}
	}
	return ActorHuman
}

// admission is what Gatehouse's validating webhook said about one request, from the audit
// annotations it returned.
type admission struct {
	decisionID, policy, rule, action, approvalID string
}

// admissionOf reads the audit annotations of Gatehouse's validating webhooks from an event.
// kube-apiserver writes a webhook's annotations as "<webhook name>/<key>"; only admission
// plugins and webhooks write audit annotations, and only those of the configured webhook names
// are read, so neither a client nor another webhook can attribute a request to a decision or an
// approval. Should two of them annotate one request, the most severe decision is kept.
func (a *attribution) admissionOf(ann map[string]string) admission {
	var out admission
	rank := -1
	for k, v := range ann {
		name, key, ok := strings.Cut(k, "/")
		if !ok || key != "decision-id" || !a.webhooks[name] {
			continue
		}
		d := admission{decisionID: v, policy: ann[name+"/policy"], rule: ann[name+"/rule"],
			action: ann[name+"/action"], approvalID: ann[name+"/approval-id"]}
		r := severity(d.action)
		if r > rank || r == rank && d.decisionID < out.decisionID {
			out, rank = d, r
		}
	}
	if rank < 0 {
		// A webhook that named an approval without a decision ID (Gatehouse before decision IDs).
		for k, v := range ann {
			if name, key, ok := strings.Cut(k, "/"); ok && key == "approval-id" && a.webhooks[name] {
				out.approvalID = v
			}
		}
	}
	return out
}

func severity(action string) int {
	switch action {
	case "deny":
		return 3
	case "requireApproval":
		return 2
	case "allow":
		return 1
	}
	return 0
}

// isDryRun reports whether an audited request was a dry run: dryRun in its query (create,
// update, patch, and delete too), or in the DeleteOptions body of a delete. Such a request
// changed nothing, whatever its status.
func isDryRun(ev *auditEvent) bool {
	// A key can only unescape to dryRun when the query holds dryRun or a percent escape: the
	// query of most requests is not parsed at all.
	if _, q, ok := strings.Cut(ev.RequestURI, "?"); ok && (strings.Contains(q, "dryRun") || strings.Contains(q, "%")) {
		// ParseQuery returns the pairs it could parse along with the first error.
		if v, _ := url.ParseQuery(q); len(v["dryRun"]) > 0 {
			return true
		}
	}
	if (ev.Verb == "delete" || ev.Verb == "deletecollection") && len(ev.RequestObject) > 0 {
		var opts struct {
			DryRun []string `json:"dryRun"`
		}
		if json.Unmarshal(ev.RequestObject, &opts) == nil && len(opts.DryRun) > 0 {
			return true
		}
	}
	return false
}
