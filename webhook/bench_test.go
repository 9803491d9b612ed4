package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// benchPolicies returns the default pack plus synthetic rules, 50 in all, none of which denies
// the benchmark's request: the allow path walks every rule. Ten synthetic rules match the
// request and evaluate a CEL condition on its object; the rest differ in resource, namespace or
// subject.
func benchPolicies(b *testing.B) []v1alpha1.AccessPolicy {
	b.Helper()
	policies, err := policy.LoadFile(filepath.Join(bed.root, "manifests", "policies", "default.yaml"))
	require.NoError(b, err)
	n := 0
	for _, p := range policies {
		n += len(p.Spec.Rules)
	}
	var rules strings.Builder
	for i := 0; n < 50; i, n = i+1, n+1 {
		fmt.Fprintf(&rules, "  - name: synthetic-%d\n    action: deny\n", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&rules, "    match: {operations: [CREATE, UPDATE], resources: [pods]}\n"+
				"    condition: object.metadata.?labels[?'team'].orValue('') == 'team-%d' || object.spec.containers.exists(c, c.image.startsWith('forbidden.example/%d'))\n", i, i)
		case 1:
			fmt.Fprintf(&rules, "    match: {apiGroups: [apps], resources: [deployments, statefulsets], namespaces: [team-%d]}\n", i)
		case 2:
			fmt.Fprintf(&rules, "    match: {resources: [pods], namespaces: [restricted-%d, other-%d]}\n", i, i)
		case 3:
			fmt.Fprintf(&rules, "    match: {resources: [\"*\"], users: [intruder-%d], groups: [blocked-%d]}\n", i, i)
		}
	}
	var synthetic v1alpha1.AccessPolicy
	require.NoError(b, yaml.UnmarshalStrict([]byte("apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\n"+
		"metadata: {name: bench-synthetic}\nspec:\n  priority: 300\n  rules:\n"+rules.String()), &synthetic))
	policies = append(policies, synthetic)
	total := 0
	for _, p := range policies {
		total += len(p.Spec.Rules)
	}
	require.Equal(b, 50, total)
	return policies
}

// reviewBody returns an encoded AdmissionReview creating a pod through the gateway, split
// around its UID so every review can carry a fresh one (the trail deduplicates by it).
func reviewBody(b *testing.B) (prefix, suffix []byte) {
	b.Helper()
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9c5", Namespace: "bench", Labels: map[string]string{"app": "web", "team": "shop"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "web", Image: "registry.example/shop/web:1.4.2",
				Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env:       []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "PORT", Value: "8080"}},
				Resources: corev1.ResourceRequirements{},
			}, {Name: "sidecar", Image: "registry.example/proxy:2.0"}},
			ServiceAccountName: "web",
		},
	}
	raw, err := json.Marshal(pod)
	require.NoError(b, err)
	const marker = "00000000-0000-0000-0000-000000000000"
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       marker,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "bench", Name: "web-7d9c5", Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "agent@example.com", Groups: []string{"agents", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {"bench"}}},
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	require.NoError(b, err)
	i := bytes.Index(body, []byte(marker))
	return body[:i], body[i+len(marker):]
}

// benchNATS is the NATS server of the benchmarks: a `gatehouse nats` process of its own, as a
// deployment runs it, so that storing the trail's records is not counted as the webhook's CPU
// (the tests' NATS, bed.nats, runs inside the test process). TestMain stops it.
var benchNATS testbed.BenchNATS

// benchPublisher is a benchmark webhook's trail: a publisher with the webhook's identity on the
// benchmarks' NATS server that counts the records it refuses. It packs the decisions of a
// session into messages, as `gatehouse webhook` does by default (--trail-records-per-message).
// It holds up to 65,536 records unacknowledged (a deployment's default is 8,192), as the proxy's
// benchmarks do: a webhook reviewing flat out on both cores leaves the server, on the same two
// cores, behind it, and a larger backlog must not make a run do less work than a deployment.
// benchReviews waits for every record to be stored before it reads the CPU times.
func benchPublisher(b *testing.B) countingPublisher {
	b.Helper()
	return countingPublisher{benchNATS.Publisher(b, natsbus.RoleWebhook, trail.PublisherOptions{Source: "webhook/bench", MaxPending: 1 << 16,
		MaxBatchRecords: trail.PackedRecords})}
}

// countingPublisher counts the records the trail refused (benchNATS.Count).
type countingPublisher struct{ *trail.Publisher }

func (c countingPublisher) Publish(ctx context.Context, r trail.Record) error {
	return benchNATS.Count(c.Publisher.Publish(ctx, r))
}

func (c countingPublisher) Ready() error { return benchNATS.Count(c.Publisher.Ready()) }

// BenchmarkAdmission measures AdmissionReviews through the webhook's HTTP handler (decode,
// decide, record, encode), in parallel on every CPU: a no-op admission handler as the baseline,
// and the validating webhook with 50 rules on the allow path, recording each decision to
// JetStream in a NATS server process of its own (benchNATS). It reports reviews per second, the
// median and 99th-percentile latency, the CPU time per review of the webhook and of the NATS
// server, and the records the trail refused.
func BenchmarkAdmission(b *testing.B) {
	prefix, suffix := reviewBody(b)
	engine := policy.NewEngine(policy.EngineOptions{})
	require.Empty(b, engine.SetPolicies(benchPolicies(b)))
	publisher := benchPublisher(b)
	validator, err := webhook.NewValidator(webhook.Options{Engine: engine, Publisher: publisher})
	require.NoError(b, err)

	// The request must take the allow path, recorded.
	check := httptest.NewRecorder()
	webhook.NewHandler(validator, nil).ServeHTTP(check, benchRequest(prefix, []byte(trail.NewID()), suffix))
	require.Contains(b, check.Body.String(), `"allowed":true`)

	for _, bc := range []struct {
		name    string
		handler admission.Handler
	}{
		{"baseline=noop", noopHandler()},
		{"policy-50-rules", validator},
	} {
		b.Run(bc.name, func(b *testing.B) { benchReviews(b, bc.handler, publisher, prefix, suffix) })
	}
}

// scalePolicies returns n rules of which the same few can match the benchmark's request (a pod
// create): five on pods with a CEL condition on the object and two on any resource, by subject;
// the others name other resources and groups, with and without conditions, as a cluster's
// policies for its other workloads would.
func scalePolicies(b *testing.B, n int) []v1alpha1.AccessPolicy {
	b.Helper()
	var rules strings.Builder
	for i := range n {
		fmt.Fprintf(&rules, "  - name: scale-%d\n    action: deny\n", i)
		switch {
		case i < 5:
			fmt.Fprintf(&rules, "    match: {operations: [CREATE, UPDATE], resources: [pods]}\n"+
				"    condition: object.metadata.?labels[?'team'].orValue('') == 'team-%d' || object.spec.containers.exists(c, c.image.startsWith('forbidden.example/%d'))\n", i, i)
		case i < 7:
			fmt.Fprintf(&rules, "    match: {resources: [\"*\"], users: [intruder-%d]}\n", i)
		case i%3 == 0:
			fmt.Fprintf(&rules, "    match: {apiGroups: [apps], resources: [deployments, statefulsets], namespaces: [team-%d]}\n", i)
		case i%3 == 1:
			fmt.Fprintf(&rules, "    match: {operations: [CREATE, UPDATE], apiGroups: [example-%d.dev], resources: [widgets]}\n"+
				"    condition: object.spec.?size.orValue(0) > %d\n", i, i)
		default:
			fmt.Fprintf(&rules, "    match: {resources: [configmaps, services/status], namespaces: [restricted-%d]}\n", i)
		}
	}
	var p v1alpha1.AccessPolicy
	require.NoError(b, yaml.UnmarshalStrict([]byte("apiVersion: gatehouse.dev/v1alpha1\nkind: AccessPolicy\n"+
		"metadata: {name: bench-scale}\nspec:\n  rules:\n"+rules.String()), &p))
	return []v1alpha1.AccessPolicy{p}
}

// BenchmarkAdmissionRules measures the validating webhook with 10, 50 and 200 rules of which
// the same seven can match the request (see scalePolicies), each against the no-op handler: the
// cost should grow with the rules that can match the request's resource, not with all rules.
func BenchmarkAdmissionRules(b *testing.B) {
	prefix, suffix := reviewBody(b)
	publisher := benchPublisher(b)
	for _, n := range []int{10, 50, 200} {
		engine := policy.NewEngine(policy.EngineOptions{})
		require.Empty(b, engine.SetPolicies(scalePolicies(b, n)))
		validator, err := webhook.NewValidator(webhook.Options{Engine: engine, Publisher: publisher})
		require.NoError(b, err)
		check := httptest.NewRecorder()
		webhook.NewHandler(validator, nil).ServeHTTP(check, benchRequest(prefix, []byte(trail.NewID()), suffix))
		require.Contains(b, check.Body.String(), `"allowed":true`)
		b.Run(fmt.Sprintf("rules=%d/baseline=noop", n), func(b *testing.B) { benchReviews(b, noopHandler(), publisher, prefix, suffix) })
		b.Run(fmt.Sprintf("rules=%d/policy", n), func(b *testing.B) { benchReviews(b, validator, publisher, prefix, suffix) })
	}
}

// noopHandler allows every request: the baseline of the admission benchmarks.
func noopHandler() admission.Handler {
	return admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
}

// benchReviews runs reviews through the webhook's HTTP handler around handler, in parallel on
// every CPU, and reports reviews per second, the median and 99th-percentile latency, the CPU time
// per review of the test process (the webhook's; the NATS server's apart, nats-cpu-ns/op) and the
// records the trail refused (benchNATS.Report). The CPU times are read once publisher has stored
// every record: they include storing the run's records (and acknowledging them), which the
// reviews do not wait for.
func benchReviews(b *testing.B, handler admission.Handler, publisher countingPublisher, prefix, suffix []byte) {
	h := webhook.NewHandler(handler, nil)
	var mu sync.Mutex
	var latencies []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	mark := benchNATS.Mark(b)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var own []time.Duration
		for pb.Next() {
			req := benchRequest(prefix, []byte(trail.NewID()), suffix)
			w := httptest.NewRecorder()
			t0 := time.Now()
			h.ServeHTTP(w, req)
			own = append(own, time.Since(t0))
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
		mu.Lock()
		latencies = append(latencies, own...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	flush, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(b, publisher.Flush(flush))
	benchNATS.Report(b, mark, len(latencies))
	slices.Sort(latencies)
	if len(latencies) > 0 {
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "reviews/s")
		b.ReportMetric(float64(latencies[len(latencies)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Nanoseconds()), "p99-ns")
	}
}

func benchRequest(prefix, uid, suffix []byte) *http.Request {
	body := make([]byte, 0, len(prefix)+len(uid)+len(suffix))
	body = append(append(append(body, prefix...), uid...), suffix...)
	r := httptest.NewRequest(http.MethodPost, webhook.PathValidate, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}
