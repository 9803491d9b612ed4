package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/enricher"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// auditEvent is what these tests read of kube-apiserver's audit events.
type auditEvent struct {
	AuditID          string `json:"auditID"`
	Stage            string `json:"stage"`
	RequestURI       string `json:"requestURI"`
	Verb             string `json:"verb"`
	ImpersonatedUser *struct {
		Username string              `json:"username"`
		Extra    map[string][]string `json:"extra"`
	} `json:"impersonatedUser"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

func (e auditEvent) code() int {
	if e.ResponseStatus == nil {
		return 0
	}
	return e.ResponseStatus.Code
}

// auditEvents reads kube-apiserver's audit log until every Audit-ID of ids has its events for
// every stage of stages, and returns the events of those IDs.
func auditEvents(t *testing.T, ids []string, stages ...string) map[string][]auditEvent {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var got map[string][]auditEvent
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		f, err := os.Open(bed.auditLog)
		require.NoError(c, err)
		defer f.Close()
		got = map[string][]auditEvent{}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev auditEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil && want[ev.AuditID] {
				got[ev.AuditID] = append(got[ev.AuditID], ev)
			}
		}
		require.NoError(c, sc.Err())
		for id := range want {
			seen := map[string]bool{}
			for _, ev := range got[id] {
				seen[ev.Stage] = true
			}
			for _, s := range stages {
				assert.True(c, seen[s], "%s: no %s event yet", id, s)
			}
		}
	}, 30*time.Second, 100*time.Millisecond)
	return got
}

type auditIDKey struct{}

// withAuditID makes the request of ctx carry the Audit-ID header id, as the proxy sends one.
func withAuditID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, auditIDKey{}, id)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// auditIDClient is a clientset for a that sends the Audit-ID of each request's context and
// records the Audit-Id header of each answer.
func auditIDClient(t *testing.T, a *actor, answered map[string]string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(a.cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			id, _ := r.Context().Value(auditIDKey{}).(string)
			if id != "" {
				r = r.Clone(r.Context())
				r.Header.Set("Audit-ID", id)
			}
			resp, err := rt.RoundTrip(r)
			if err == nil && id != "" {
				answered[id] = resp.Header.Get("Audit-Id")
			}
			return resp, err
		})
	}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// TestKubeAPIServerAuditFacts checks, against the real kube-apiserver with the shipped audit
// policy and webhook configurations, what the enricher and docs/auditing.md rely on:
//   - a client's Audit-ID header is kept as the event's auditID and answered in the Audit-Id
//     header; the shipped policy logs one event per ordinary request, at ResponseComplete, and
//     ResponseStarted and ResponseComplete for a stream (exec);
//   - the validating webhook's audit annotations arrive in that request's event as
//     "<webhook name>/<key>", for allowed and denied requests and for dry runs, naming the decision
//     record whose AdmissionUID is kube-apiserver's ID of the webhook call, not the Audit-ID;
//   - a dry run is answered 201 like a real create and says dryRun=All in its requestURI;
//   - the impersonation extras arrive lowercased in impersonatedUser.extra.
func TestKubeAPIServerAuditFacts(t *testing.T) {
	ctx := t.Context()
	ns := bed.kube.Namespace(t, "audit-facts")
	a := agent(t)
	answered := map[string]string{}
	cs := auditIDClient(t, a, answered)
	ids := map[string]string{}
	for _, k := range []string{"allowed", "held", "dry-configmap", "dry-secret", "read", "exec"} {
		ids[k] = trail.NewID()
	}

	_, err := cs.CoreV1().ConfigMaps(ns).Create(withAuditID(ctx, ids["allowed"]), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets(ns).Create(withAuditID(ctx, ids["held"]), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.CreateOptions{})
	require.Error(t, err, "the default pack holds Secret changes for approval; without an approver they are denied")
	_, err = cs.CoreV1().ConfigMaps(ns).Create(withAuditID(ctx, ids["dry-configmap"]), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets(ns).Create(withAuditID(ctx, ids["dry-secret"]), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dry"}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err, "a dry run is never held")
	_, err = cs.CoreV1().ConfigMaps(ns).Get(withAuditID(ctx, ids["read"]), "settings", metav1.GetOptions{})
	require.NoError(t, err)
	runPod(t, ns, "shell", nil)
	execActor := *a
	execActor.cfg = rest.CopyConfig(a.cfg)
	execActor.cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Audit-ID", ids["exec"])
			return rt.RoundTrip(r)
		})
	}
	out, err := connect(ctx, &execActor, ns, "shell", "exec")
	require.NoError(t, err)
	assert.Equal(t, "admitted\n", out)

	all := make([]string, 0, len(ids))
	for _, id := range ids {
		all = append(all, id)
	}
	events := auditEvents(t, all, "ResponseComplete")
	for k, id := range ids {
		if k != "exec" {
			assert.Equal(t, id, answered[id], "%s: the Audit-Id header answers the client's Audit-ID", k)
		}
	}

	t.Run("one event per request, at ResponseComplete; a stream has ResponseStarted too", func(t *testing.T) {
		for k, id := range ids {
			var stages []string
			for _, ev := range events[id] {
				stages = append(stages, ev.Stage)
				assert.Equal(t, id, ev.AuditID)
			}
			if k == "exec" {
				assert.Equal(t, []string{"ResponseStarted", "ResponseComplete"}, stages, k)
				for _, ev := range events[id] {
					assert.Equal(t, http.StatusSwitchingProtocols, ev.code(), "exec %s", ev.Stage)
				}
				continue
			}
			assert.Equal(t, []string{"ResponseComplete"}, stages, k)
		}
	})

	// annotations returns an event's annotations of Gatehouse's webhooks, and the webhook names.
	gatehouse := func(ev auditEvent) (map[string]string, []string) {
		out := map[string]string{}
		var names []string
		for k, v := range ev.Annotations {
			if name, key, ok := strings.Cut(k, "/"); ok && strings.HasSuffix(name, ".validate.gatehouse.dev") {
				out[key] = v
				names = append(names, name)
			}
		}
		return out, names
	}
	one := func(t *testing.T, k string) auditEvent {
		t.Helper()
		require.Len(t, events[ids[k]], 1, k)
		return events[ids[k]][0]
	}

	t.Run("the webhook's audit annotations name its decision, prefixed with the webhook's name", func(t *testing.T) {
		tests := []struct {
			event    string
			resource string
			webhook  string
			code     int
			want     map[string]string
		}{
			{"allowed", "configmaps", "general.validate.gatehouse.dev", http.StatusCreated, map[string]string{
				webhook.AuditAnnotationAction: "allow"}},
			{"held", "secrets", "privileged.validate.gatehouse.dev", http.StatusForbidden, map[string]string{
				webhook.AuditAnnotationAction: "requireApproval",
				webhook.AuditAnnotationPolicy: "gatehouse-approvals", webhook.AuditAnnotationRule: "secret-changes"}},
		}
		// kube-apiserver may call a webhook again for one request (it retries a call whose
		// connection broke), so a request can have more than one decision record: the annotation
		// names the one whose answer kube-apiserver used, which must be among them.
		for _, tt := range tests {
			t.Run(tt.event, func(t *testing.T) {
				ev := one(t, tt.event)
				got, names := gatehouse(ev)
				id := got[webhook.AuditAnnotationDecisionID]
				require.NotEmpty(t, id, "the event names a decision")
				want := maps.Clone(tt.want)
				want[webhook.AuditAnnotationDecisionID] = id
				assert.Equal(t, want, got)
				assert.Equal(t, []string{tt.webhook}, dedupe(names), "one webhook decided it")
				assert.Contains(t, enricher.DefaultAdmissionWebhooks, tt.webhook, "the enricher reads this webhook's annotations")
				assert.Equal(t, tt.code, ev.code())
				d := sessionDecision(t, a.session, id)
				assert.Equal(t, "validating-webhook", d.Component)
				assert.Equal(t, tt.resource, d.Operation.Resource)
				assert.Equal(t, tt.want[webhook.AuditAnnotationAction], d.Policy.Action)
				assert.Equal(t, tt.want[webhook.AuditAnnotationRule], d.Policy.Rule)
				// The decision's AdmissionUID is kube-apiserver's ID of the webhook call: not the
				// Audit-ID, and nowhere in the event.
				require.NotEmpty(t, d.AdmissionUID)
				assert.NotEqual(t, ev.AuditID, d.AdmissionUID)
				raw, err := json.Marshal(ev)
				require.NoError(t, err)
				assert.NotContains(t, string(raw), d.AdmissionUID+`"`, "the admission UID is not in the audit event")
			})
		}
	})

	t.Run("a dry run is answered like the real thing, says so in its URI, and is decided", func(t *testing.T) {
		for k, action := range map[string]string{"dry-configmap": "allow", "dry-secret": "requireApproval"} {
			ev := one(t, k)
			assert.Equal(t, http.StatusCreated, ev.code(), k)
			assert.Contains(t, ev.RequestURI, "dryRun=All", k)
			got, _ := gatehouse(ev)
			assert.Equal(t, action, got[webhook.AuditAnnotationAction], k)
			assert.NotEmpty(t, got[webhook.AuditAnnotationDecisionID], k)
		}
	})

	t.Run("reads are not decided", func(t *testing.T) {
		got, _ := gatehouse(one(t, "read"))
		assert.Empty(t, got)
	})

	t.Run("impersonation extras arrive lowercased", func(t *testing.T) {
		ev := one(t, "allowed")
		require.NotNil(t, ev.ImpersonatedUser)
		assert.Equal(t, []string{a.session}, ev.ImpersonatedUser.Extra[identity.ExtraSessionID])
	})
}

// sessionDecision returns the decision record id of a session from the trail, failing the test
// when the session has no such record.
func sessionDecision(t *testing.T, session, id string) *trail.Decision {
	t.Helper()
	subj, err := trail.Subject(&trail.Decision{SessionID: session})
	require.NoError(t, err)
	cons, err := bed.inspect.OrderedConsumer(t.Context(), trail.StreamTrail, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	require.NoError(t, err)
	var ids []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			for r, err := range trail.DecodeAll(m.Data()) {
				require.NoError(t, err)
				if d, ok := r.(*trail.Decision); ok {
					if d.ID == id {
						return d
					}
					ids = append(ids, d.ID)
				}
			}
		}
	}
	require.Failf(t, "decision not recorded", "the session %s has no decision %s; it has %v", session, id, ids)
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
