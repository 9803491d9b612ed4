package app

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// trailConn is a component's connection to NATS and a publisher of trail records.
type trailConn struct {
	conn *natsbus.Conn
	js   jetstream.JetStream
	pub  *trail.Publisher
	log  *slog.Logger
	role natsbus.Role
	// provisioned is set once the streams the role needs were found.
	provisioned atomic.Bool
}

// openTrail connects to NATS with o (its Role says as whom) and starts a publisher whose
// records name component and this host as their source, packing up to recordsPerMessage records
// of one subject per message (trail.PublisherOptions.MaxBatchRecords; 0 for one each). It does
// not wait for NATS: the component starts while NATS is away, and ready says why it cannot
// record yet. The connection is closed once lc's parts stopped.
func openTrail(ctx context.Context, lc *lifecycle, o natsbus.Options, component string, recordsPerMessage int) (*trailConn, error) {
	log := lc.log
	o.Logger = log
	conn, err := natsbus.Connect(ctx, o)
	if err != nil {
		return nil, err
	}
	js, err := conn.JetStream()
	var pub *trail.Publisher
	if err == nil {
		host, _ := os.Hostname()
		pub, err = trail.NewPublisher(conn.Conn, trail.PublisherOptions{Source: component + "/" + host, MaxBatchRecords: recordsPerMessage, Logger: log})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	t := &trailConn{conn: conn, js: js, pub: pub, log: log, role: o.Role}
	lc.onStop(t.close)
	return t, nil
}

// ready reports whether the component can use NATS: connected, and the streams its role needs
// provisioned. The error says which is missing.
func (t *trailConn) ready(ctx context.Context) error {
	if err := t.conn.Ready(); err != nil {
		return err
	}
	if t.provisioned.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := natsbus.CheckStreams(ctx, t.js, t.role); err != nil {
		return err
	}
	t.provisioned.Store(true)
	return nil
}

// source names this process in records of other kinds (approval events).
func (t *trailConn) source() string {
	host, _ := os.Hostname()
	return string(t.role) + "/" + host
}

// close waits, until ctx ends, for the records still unacknowledged, then closes the connection.
func (t *trailConn) close(ctx context.Context) error {
	err := t.pub.Close(ctx)
	if err != nil {
		t.log.Error("trail records unacknowledged at shutdown", "err", err)
	}
	t.conn.Close()
	return err
}
