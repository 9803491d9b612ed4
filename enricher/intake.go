package enricher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// IntakePath is the path the intake serves; the audit webhook kubeconfig's server URL ends
// with it.
const IntakePath = "/audit"

var _ http.Handler = (*Enricher)(nil)

// ServeHTTP is the audit webhook intake. It accepts an audit.k8s.io/v1 EventList (POST,
// application/json), masks every event, publishes the batch to JetStream under a message ID
// derived from the body, and answers 200 only after JetStream stored all of it. A retry of the
// same batch by kube-apiserver is stored once. When the batch cannot be stored, the answer is
// an error status that makes kube-apiserver retry: nothing is accepted partly.
func (e *Enricher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var body []byte
	code, err := e.intake(w, r, &body)
	if e.observe != nil {
		e.observe(body, code)
	}
	e.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if err != nil {
		e.log.Error("audit batch refused", "status", code, "bytes", len(body), "remote", r.RemoteAddr, "err", err)
		writeStatus(w, code, err.Error())
		return
	}
	e.log.Debug("audit batch stored", "bytes", len(body), "took", time.Since(start))
	w.WriteHeader(http.StatusOK)
}

func (e *Enricher) intake(w http.ResponseWriter, r *http.Request, body *[]byte) (int, error) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed, use POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, errors.New("content type must be application/json")
	}
	if err := e.Ready(r.Context()); err != nil {
		return http.StatusServiceUnavailable, err
	}
	select {
	case e.inFlight <- struct{}{}:
		defer func() { <-e.inFlight }()
	case <-r.Context().Done():
		return http.StatusServiceUnavailable, fmt.Errorf("no intake slot free before the request ended: %w", r.Context().Err())
	}
	b, err := readBody(http.MaxBytesReader(w, r.Body, e.opts.MaxRequestBytes), r.ContentLength, e.opts.MaxRequestBytes)
	*body = b
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("batch larger than %d bytes; lower --audit-webhook-batch-max-size", e.opts.MaxRequestBytes)
		}
		return http.StatusBadRequest, fmt.Errorf("read the batch: %w", err)
	}
	msgs, n, err := e.prepare(b, OriginWebhook)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			return http.StatusBadRequest, err
		}
		return http.StatusInternalServerError, err
	}
	if n == 0 {
		return http.StatusOK, nil
	}
	sum := sha256.Sum256(b)
	if err := e.publish(r.Context(), "webhook-"+hex.EncodeToString(sum[:16]), msgs); err != nil {
		return http.StatusServiceUnavailable, err
	}
	e.metrics.events.WithLabelValues(OriginWebhook).Add(float64(n))
	return http.StatusOK, nil
}

// readBody reads a request body into a buffer sized by its Content-Length.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	if length <= 0 || length > limit {
		return io.ReadAll(r)
	}
	var buf bytes.Buffer
	buf.Grow(int(length) + 1) // +1: ReadFrom needs room to see EOF without growing
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// prepare splits a raw EventList, masks its events and returns the messages to publish and the
// number of events.
func (e *Enricher) prepare(body []byte, origin string) ([][]byte, int, error) {
	start := time.Now()
	l, err := splitEventList(body)
	e.metrics.stage(stageSplit, time.Since(start))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if l.Kind != "EventList" || l.APIVersion != auditAPIVersion {
		return nil, 0, fmt.Errorf("%w: got kind %q, apiVersion %q, want EventList, %s", ErrMalformed, l.Kind, l.APIVersion, auditAPIVersion)
	}
	if len(l.Items) == 0 {
		return nil, 0, nil
	}
	start = time.Now()
	b := newMaskedBatch(e.opts.Masker, origin, len(body)+len(body)/8)
	for _, it := range l.Items {
		if err := b.add(it); err != nil {
			return nil, 0, err
		}
	}
	msgs, err := b.packed(e.opts.MaxMessageBytes)
	e.metrics.stage(stageMask, time.Since(start))
	if err != nil {
		return nil, 0, err
	}
	truncated := 0
	for _, s := range b.stats {
		if s.Truncated {
			truncated++
		}
	}
	if truncated > 0 {
		e.metrics.truncated.Add(float64(truncated))
		e.log.Warn("events stored without their request and response objects", "events", truncated)
	}
	return msgs, b.len(), nil
}

// publish stores messages in the audit stream and waits for every acknowledgement. Message i
// of n gets the ID id, or id/i when n > 1, so a retry of the same batch is stored once.
func (e *Enricher) publish(ctx context.Context, id string, msgs [][]byte) error {
	start := time.Now()
	defer func() { e.metrics.stage(stagePublish, time.Since(start)) }()
	if st := e.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w: NATS connection is %s", trail.ErrUnavailable, st)
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for i, data := range msgs {
		m := nats.NewMsg(trail.SubjectAuditBatch)
		m.Data = data
		mid := id
		if len(msgs) > 1 {
			mid = id + "/" + strconv.Itoa(i)
		}
		m.Header.Set(jetstream.MsgIDHeader, mid)
		m.Header.Set(HeaderEncoding, encodingS2)
		f, err := e.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("%w: publish the audit batch: %w", trail.ErrUnavailable, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("%w: JetStream did not store the audit batch: %w", trail.ErrUnavailable, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: JetStream did not acknowledge the audit batch: %w", trail.ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// writeStatus answers with a metav1.Status, which kube-apiserver's webhook client logs.
func writeStatus(w http.ResponseWriter, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind":       "Status",
		"apiVersion": "v1",
		"status":     "Failure",
		"code":       code,
		"reason":     http.StatusText(code),
		"message":    "gatehouse enricher: " + strings.TrimPrefix(message, "enricher: "),
	})
}
