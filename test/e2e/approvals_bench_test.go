package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/approvals"
)

// BenchmarkApprovalRelease measures how long a held request takes, once an approver's decision
// is stored, to run at the API server and answer its client, through the real proxy, webhook
// and NATS. The baseline is the same kind of write that needs no approval.
func BenchmarkApprovalRelease(b *testing.B) {
	ctx := context.Background()
	ns := bed.kube.Namespace(b, "bench-approval")
	agentCfg := &rest.Config{Host: bed.proxyURL, BearerToken: token("bench-agent", agentGroup), TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}}
	agentCfg.QPS, agentCfg.Burst = -1, 0 // no client-side rate limit: measure Gatehouse
	agent, err := kubernetes.NewForConfig(agentCfg)
	if err != nil {
		b.Fatal(err)
	}
	approverCfg := &rest.Config{Host: bed.consoleURL, BearerToken: token("bench-approver", approverGroup), TLSClientConfig: rest.TLSClientConfig{CAData: bed.proxyCA}}
	hc, err := rest.HTTPClientFor(approverCfg)
	if err != nil {
		b.Fatal(err)
	}
	approver := &approvals.Client{BaseURL: bed.consoleURL, HTTP: hc}

	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*9/10].Nanoseconds()), "p90-ns")
	}
	b.Run("baseline=unheld-write", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			i++
			start := time.Now()
			_, err := agent.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
	})
	b.Run("approved-release", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			i++
			name := fmt.Sprintf("held-%d-%d", time.Now().UnixNano(), i)
			done := make(chan error, 1)
			var finished time.Time
			go func() {
				_, err := agent.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				finished = time.Now()
				done <- err
			}()
			b.StopTimer()
			var id string
			err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				items, err := approver.List(ctx, approvals.StatePending)
				for _, r := range items {
					if r.Operation.Name == name {
						id = r.ID
					}
				}
				return id != "", err
			})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := approver.Decide(ctx, id, approvals.Approve, "bench"); err != nil {
				b.Fatal(err)
			}
			decided := time.Now()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			lat = append(lat, finished.Sub(decided))
		}
		report(b, lat)
	})
}
