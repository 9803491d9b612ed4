package drills

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxRequestBytes is the enricher's default --max-request-bytes: the largest batch it accepts.
const maxRequestBytes = 64 << 20

// event returns audit event i of a batch: a mix of metadata-level reads, writes with request
// and response objects, and Secret reads with data, as kube-apiserver sends them.
func event(prefix string, i int) []byte {
	ts := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
	common := fmt.Sprintf(`"auditID":"%s-%08d","stage":"ResponseComplete","user":{"username":"user-%d@example.com","groups":["dev","system:authenticated"]},"sourceIPs":["10.0.%d.%d"],"userAgent":"kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef","requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"dev\" of Role \"dev\""}`,
		prefix, i, i%37, i%250, i%251, ts, ts)
	ns := fmt.Sprintf("team-%d", i%23)
	switch i % 10 {
	case 6, 7:
		obj := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-%d","namespace":"%s","labels":{"app":"web"}},"data":{"LOG_LEVEL":"info","FEATURE_FLAGS":"a,b,c","listen":":%d"}}`, i, ns, 8000+i%100)
		return []byte(`{"level":"RequestResponse",` + common + `,"requestURI":"/api/v1/namespaces/` + ns + `/configmaps","verb":"create","objectRef":{"resource":"configmaps","namespace":"` + ns + `","name":"app","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":` + obj + `,"responseObject":` + obj + `}`)
	case 8:
		return []byte(`{"level":"RequestResponse",` + common + `,"requestURI":"/api/v1/namespaces/` + ns + `/secrets/db","verb":"get","objectRef":{"resource":"secrets","namespace":"` + ns + `","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"` + ns + `"},"data":{"password":"aHVudGVyMi1jb3JyZWN0LWhvcnNl"},"type":"Opaque"}}`)
	default:
		return []byte(`{"level":"Metadata",` + common + `,"requestURI":"/api/v1/namespaces/` + ns + `/pods?limit=500","verb":"list","objectRef":{"resource":"pods","namespace":"` + ns + `","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}`)
	}
}

const (
	listHead = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`
	listTail = `]}`
)

// batchOf returns the number of events of a batch of at most size bytes, and its length.
func batchOf(prefix string, size int) (int, int64) {
	n, length := 0, int64(len(listHead)+len(listTail))
	for {
		l := int64(len(event(prefix, n)))
		if n > 0 {
			l++ // comma
		}
		if length+l > int64(size) {
			return n, length
		}
		length += l
		n++
	}
}

// batchReader generates an EventList of n events as it is read, so that the drill holds no
// body in memory.
type batchReader struct {
	prefix         string
	n, i           int
	buf            bytes.Buffer
	started, ended bool
}

func (r *batchReader) Read(p []byte) (int, error) {
	for r.buf.Len() < len(p) && !r.ended {
		switch {
		case !r.started:
			r.buf.WriteString(listHead)
			r.started = true
		case r.i == r.n:
			r.buf.WriteString(listTail)
			r.ended = true
		default:
			if r.i > 0 {
				r.buf.WriteByte(',')
			}
			r.buf.Write(event(r.prefix, r.i))
			r.i++
		}
	}
	if r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return r.buf.Read(p)
}

// post sends a generated batch to the intake with kube-apiserver's client certificate.
func post(t *testing.T, b *drillBed, url string, body io.Reader, length int64) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	require.NoError(t, err)
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: b.pki.ClientTLS()}, Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitCount waits until query counts want rows.
func waitCount(t *testing.T, b *drillBed, want uint64, query string) {
	t.Helper()
	require.NoError(t, testbed.WaitFor(t.Context(), 10*time.Minute, func(ctx context.Context) error {
		var got uint64
		if err := b.ch.QueryRow(ctx, query).Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: %d rows, want %d", query, got, want)
		}
		return nil
	}))
}

// TestDrillMemory measures the enricher's peak RSS (VmHWM, a fresh process for each case) for
// one and for eight concurrent maximum-size batches, all the way into ClickHouse, and for one
// 50 MB event, which is stored truncated.
func TestDrillMemory(t *testing.T) {
	size := maxRequestBytes - 64<<10
	if !bed.full {
		size = 16 << 20
	}
	b := newMemoryBed(t)
	intake := b.intakeURL()
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }

	measure := func(name string, bodies int) (int64, int64, int) {
		b.restartEnricher(t)
		idle, err := b.enricher.RSS()
		require.NoError(t, err)
		var wg sync.WaitGroup
		var events int
		for i := range bodies {
			prefix := fmt.Sprintf("%s-%d", name, i)
			n, length := batchOf(prefix, size)
			events += n
			wg.Go(func() {
				assert.Equal(t, http.StatusOK, post(t, b, intake, &batchReader{prefix: prefix, n: n}, length))
			})
		}
		wg.Wait()
		waitCount(t, b, uint64(events), "SELECT count() FROM "+b.db+".audit_events FINAL WHERE startsWith(audit_id, '"+name+"-')")
		peak, err := b.enricher.PeakRSS()
		require.NoError(t, err)
		return idle, peak, events
	}

	idle1, peak1, events1 := measure("one", 1)
	idle8, peak8, events8 := measure("eight", 8)

	// One event of 50 MB: its request object alone.
	b.restartEnricher(t)
	huge := `{"level":"RequestResponse","auditID":"huge-1","stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/a/configmaps","user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"a","name":"big","apiVersion":"v1"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-12-01T03:00:00.000001Z","stageTimestamp":"2026-12-01T03:00:00.000002Z","requestObject":{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"`
	const hugeSize = 50 << 20
	body := io.MultiReader(strings.NewReader(listHead+huge), io.LimitReader(repeat('x'), hugeSize), strings.NewReader(`"}}}`+listTail))
	require.Equal(t, http.StatusOK, post(t, b, intake, body, int64(len(listHead)+len(huge)+hugeSize+4+len(listTail))))
	waitCount(t, b, 1, "SELECT count() FROM "+b.db+".audit_events FINAL WHERE audit_id = 'huge-1'")
	var truncated, objects string
	var rowBytes uint64
	require.NoError(t, b.ch.QueryRow(t.Context(), "SELECT annotations['audit.k8s.io/truncated'], request_object, length(formatRow('TSV', *)) FROM "+b.db+".audit_events FINAL WHERE audit_id = 'huge-1'").
		Scan(&truncated, &objects, &rowBytes))
	peakHuge, err := b.enricher.PeakRSS()
	require.NoError(t, err)

	report("memory: body=%.0fMiB 1-body: events=%d idle=%.0fMiB peak=%.0fMiB; 8-bodies-concurrent: events=%d idle=%.0fMiB peak=%.0fMiB; 1 event of 50MiB: peak=%.0fMiB stored truncated=%s row=%dB",
		mib(int64(size)), events1, mib(idle1), mib(peak1), events8, mib(idle8), mib(peak8), mib(peakHuge), truncated, rowBytes)
	assert.Equal(t, "true", truncated, "the 50 MB event is marked truncated")
	assert.Empty(t, objects, "and stored without its request object")
	assert.Less(t, rowBytes, uint64(64<<10), "as a small row")
	const budget = 512 << 20 // half the shipped 1 GiB limit
	assert.Less(t, peak1, int64(budget))
	assert.Less(t, peak8, int64(budget), "eight concurrent bodies do not multiply the peak")
	assert.Less(t, peakHuge, int64(budget))
}

// repeat is an endless reader of one byte.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
