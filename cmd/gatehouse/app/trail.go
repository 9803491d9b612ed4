package app

import (
	"context"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// trailConn is a component's connection to NATS with the trail's streams in place and a
// publisher of trail records.
type trailConn struct {
	conn *natsbus.Conn
	js   jetstream.JetStream
	pub  *trail.Publisher
	log  *slog.Logger
}

// openTrail connects to NATS as component (e.g. "proxy"), ensures the trail's streams and starts
// a publisher whose records name component and this host as their source. The connection is
// closed once lc's parts stopped.
func openTrail(ctx context.Context, lc *lifecycle, o natsbus.Options, component string) (*trailConn, error) {
	log := lc.log
	o.Name, o.Logger = "gatehouse-"+component, log
	conn, err := natsbus.Connect(ctx, o)
	if err != nil {
		return nil, err
	}
	js, err := conn.JetStream()
	if err == nil {
		err = trail.EnsureStreams(ctx, js, trail.StreamOptions{})
	}
	var pub *trail.Publisher
	if err == nil {
		host, _ := os.Hostname()
		pub, err = trail.NewPublisher(conn.Conn, trail.PublisherOptions{Source: component + "/" + host, Logger: log})
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	t := &trailConn{conn: conn, js: js, pub: pub, log: log}
	lc.onStop(t.close)
	return t, nil
}

// source names this process in records of other kinds (approval events).
func (t *trailConn) source(component string) string {
	host, _ := os.Hostname()
	return component + "/" + host
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
