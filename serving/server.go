package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Run serves srv on l until ctx ends, then shuts it down gracefully, waiting up to grace for
// requests in flight. With tlsCfg it serves HTTPS. It returns nil after a shutdown caused by ctx.
func Run(ctx context.Context, srv *http.Server, l net.Listener, tlsCfg *tls.Config, grace time.Duration) error {
	if srv.ReadHeaderTimeout == 0 {
		// Slowloris: a client must send its headers promptly. Bodies and streams are not bounded
		// here; long-lived watches and exec sessions are legitimate.
		srv.ReadHeaderTimeout = 10 * time.Second
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Streams that outlive the grace period are cut.
		err = srv.Close()
	}
	<-errc
	return err
}

// Health serves /healthz (the process is alive) and /readyz (every registered check passes), in
// the manner of kube-apiserver: 200 "ok", or 503 naming the failed checks. Check details go to the
// log, not to the response.
type Health struct {
	log *slog.Logger

	mu     sync.RWMutex
	checks map[string]func(context.Context) error
}

// NewHealth returns a Health reporting failures to log.
func NewHealth(log *slog.Logger) *Health {
	return &Health{log: log, checks: map[string]func(context.Context) error{}}
}

// AddReadyCheck registers a readiness check under name.
func (h *Health) AddReadyCheck(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// Install registers /healthz and /readyz on mux.
func (h *Health) Install(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /readyz", h.serveReady)
}

func (h *Health) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	h.mu.RLock()
	defer h.mu.RUnlock()
	var failed []string
	for name, check := range h.checks {
		if err := check(ctx); err != nil {
			h.log.Warn("readiness check failed", "check", name, "err", err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v", failed)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors, for one
// component's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
