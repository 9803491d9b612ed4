package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/console"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
)

// sessionLog opens the session log the console's session pages read: the enricher's ClickHouse
// database, with the --clickhouse-* flags of gatehouse sessions. Without --clickhouse-addr the
// console has none, and its session pages say so. A ClickHouse that cannot be reached now does
// not stop the console: the pages say so until it can.
func (o *consoleOptions) sessionLog(ctx context.Context, log *slog.Logger) (console.SessionLog, func(), error) {
	if o.clickhouseSet == nil || !o.clickhouseSet() {
		log.Info("no --clickhouse-addr: the console shows no sessions")
		return nil, func() {}, nil
	}
	conn, err := o.clickhouse.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := sessionlog.New(conn, o.clickhouse.Database)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		log.Warn("ClickHouse is not reachable yet: the session pages say so until it is", "addr", o.clickhouse.Addr, "err", err)
	} else {
		log.Info("session pages read ClickHouse", "addr", o.clickhouse.Addr, "database", o.clickhouse.Database)
	}
	return store, func() { _ = conn.Close() }, nil
}
