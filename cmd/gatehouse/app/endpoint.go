package app

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-dev/gatehouse/certs"
	"github.com/gatehouse-dev/gatehouse/serving"
)

// endpointOptions are the flags of a component that serves HTTPS (the proxy, the console, the enricher's
// intake), with its /healthz, /readyz and /metrics on a separate plain-HTTP address.
type endpointOptions struct {
	tls           serving.TLSOptions
	bindAddress   string
	securePort    int
	healthAddress string
	shutdownGrace time.Duration
	// selfManaged is a serving certificate the component issues itself (certificates.go);
	// source runs it, once tlsConfig made it.
	selfManaged certs.Flags
	source      *certs.Source
}

func (o *endpointOptions) addFlags(fs *pflag.FlagSet, what string) {
	o.tls.AddFlags(fs)
	o.selfManaged.AddFlags(fs)
	fs.StringVar(&o.bindAddress, "bind-address", "0.0.0.0", "Address to serve "+what+" on.")
	fs.IntVar(&o.securePort, "secure-port", 8443, "HTTPS port of "+what+".")
	fs.StringVar(&o.healthAddress, "health-bind-address", ":8081", "Address of /healthz, /readyz and /metrics (plain HTTP). Empty disables them.")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace-period", 30*time.Second, "How long requests in flight may finish at shutdown.")
}

// serve runs srv on the HTTPS address and, unless disabled, health and metrics on the health
// address, in grp until ctx ends. The listeners are opened before serve returns, so an address in
// use is reported at once.
func (o *endpointOptions) serve(ctx context.Context, grp *errgroup.Group, log *slog.Logger, what string, srv *http.Server, tlsCfg *tls.Config, health *serving.Health, reg *prometheus.Registry) error {
	l, err := net.Listen("tcp", net.JoinHostPort(o.bindAddress, strconv.Itoa(o.securePort)))
	if err != nil {
		return err
	}
	if o.source != nil {
		grp.Go(func() error { return o.source.Start(ctx) })
		health.AddReadyCheck("serving-certificate", o.source.Ready)
	}
	grp.Go(func() error {
		log.Info("serving "+what, "address", l.Addr().String())
		return serving.Run(ctx, srv, l, tlsCfg, o.shutdownGrace)
	})
	if o.healthAddress == "" {
		return nil
	}
	mux := http.NewServeMux()
	health.Install(mux)
	mux.Handle("GET /metrics", serving.MetricsHandler(reg))
	hl, err := net.Listen("tcp", o.healthAddress)
	if err != nil {
		return err
	}
	grp.Go(func() error { return serving.Run(ctx, &http.Server{Handler: mux}, hl, nil, time.Second) })
	return nil
}
