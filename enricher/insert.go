package enricher

import (
	"context"
	sqldriver "database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrRejected is wrapped by the errors of rows ClickHouse rejected for good.
var ErrRejected = errors.New("enricher: ClickHouse rejected the row")

// insert writes the rows of one table, in one INSERT when it can. When ClickHouse rejects the
// INSERT for a reason that is not about being reachable, it finds the rows it rejects by
// halving the batch, stores the other rows, and stores the rejected ones in dead_letters, so
// that one bad row neither blocks its stream nor holds back the others. A row is taken for
// rejected for good when ClickHouse says its data is wrong, or when other rows of the same batch
// went in; when every row fails with an error that could be the server's (a missing table, a
// permission), the batch fails and is delivered again.
func (e *Enricher) insert(ctx context.Context, c *columns) error {
	start := time.Now()
	err := e.send(ctx, c, 0, c.rows)
	e.metrics.stage(stageInsert, time.Since(start))
	if err == nil {
		e.metrics.rows.WithLabelValues(c.table).Add(float64(c.rows))
		if e.afterInsert != nil {
			return e.afterInsert(c.table)
		}
		return nil
	}
	e.metrics.insertErrors.WithLabelValues(c.table).Inc()
	if transient(err) {
		return fmt.Errorf("enricher: insert %d rows into %s.%s: %w", c.rows, e.db, c.table, err)
	}
	e.log.Warn("ClickHouse refused an insert; looking for the rows it rejects", "table", c.table, "rows", c.rows, "err", err)
	type rejected struct {
		row int
		err error
	}
	var bad []rejected
	stored := 0
	var split func(lo, hi int, err error) error
	split = func(lo, hi int, err error) error {
		if hi-lo == 1 {
			bad = append(bad, rejected{lo, err})
			if stored == 0 && len(bad) > maxRejectedProbe && !rejectsData(err) {
				// Row after row fails, none went in: the server's problem, not the rows'.
				return err
			}
			return nil
		}
		mid := lo + (hi-lo)/2
		for _, r := range [][2]int{{lo, mid}, {mid, hi}} {
			err := e.send(ctx, c, r[0], r[1])
			if err == nil {
				stored += r[1] - r[0]
				continue
			}
			if transient(err) {
				return err
			}
			if err := split(r[0], r[1], err); err != nil {
				return err
			}
		}
		return nil
	}
	if err := split(0, c.rows, err); err != nil {
		return fmt.Errorf("enricher: insert into %s.%s: %w", e.db, c.table, err)
	}
	permanent := stored > 0
	for _, b := range bad {
		permanent = permanent || rejectsData(b.err)
	}
	if !permanent {
		return fmt.Errorf("enricher: insert %d rows into %s.%s: every row failed: %w", c.rows, e.db, c.table, bad[0].err)
	}
	dl := newDeadLetterRows()
	at := now()
	for _, b := range bad {
		row := c.row(b.row)
		data, merr := json.Marshal(row)
		if merr != nil {
			data = []byte(fmt.Sprintf(`{"error":%q}`, "the row cannot be shown as JSON: "+merr.Error()))
		}
		var src rowSource
		if b.row < len(c.srcs) {
			src = c.srcs[b.row]
		}
		dl.add(at, c.table, recordKey(row), src, b.err, string(data), at)
		e.log.Error("ClickHouse rejected a row; stored in dead_letters", "table", c.table, "record", recordKey(row),
			"stream", src.stream, "sequence", src.sequence, "err", b.err)
	}
	if err := e.send(ctx, &dl.columns, 0, dl.rows); err != nil {
		return fmt.Errorf("enricher: store %d rejected rows of %s.%s in dead_letters: %w", dl.rows, e.db, c.table, err)
	}
	e.metrics.deadLetters.WithLabelValues(c.table).Add(float64(len(bad)))
	e.metrics.rows.WithLabelValues(c.table).Add(float64(stored))
	if e.afterInsert != nil {
		return e.afterInsert(c.table)
	}
	return nil
}

// maxRejectedProbe is how many rows failing one by one, none stored, make a failure the
// server's rather than the rows'.
const maxRejectedProbe = 16

// recordKey names a row's record in logs and dead letters: the audit ID, stage and request
// fingerprint of an audit event, the ID of a trail record, the stream position of an ingest
// error.
func recordKey(row map[string]any) string {
	switch {
	case row["audit_id"] != nil && row["event_key"] != nil:
		return fmt.Sprintf("%v/%v/%v", row["audit_id"], row["stage"], row["event_key"])
	case row["id"] != nil:
		return fmt.Sprint(row["id"])
	case row["stream_sequence"] != nil:
		return fmt.Sprintf("%v/%v", row["stream"], row["stream_sequence"])
	}
	return ""
}

// send inserts rows lo..hi-1 of c in one INSERT.
func (e *Enricher) send(ctx context.Context, c *columns, lo, hi int) error {
	// An insert under way at shutdown completes (within InsertTimeout), so that its batch is
	// acknowledged rather than delivered again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.InsertTimeout)
	defer cancel()
	// optimize_on_insert=0: ReplacingMergeTree would otherwise deduplicate every inserted block
	// on its own, which doubles ClickHouse's insert cost; duplicates collapse in merges and in
	// every query with FINAL anyway.
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"optimize_on_insert": 0}))
	batch, err := e.ch.PrepareBatch(ctx, c.insertQuery(e.db), driver.WithReleaseConnection())
	if err != nil {
		return err
	}
	defer func() { _ = batch.Close() }()
	if err := c.appendTo(batch, lo, hi); err != nil {
		return err
	}
	return batch.Send()
}

// ClickHouse error codes (src/Common/ErrorCodes.cpp) an insert can fail with.
var (
	// dataErrors say that the data itself is wrong: the same rows will always fail.
	dataErrors = map[int32]bool{
		6:   true, // CANNOT_PARSE_TEXT
		27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
		38:  true, // CANNOT_PARSE_DATE
		41:  true, // CANNOT_PARSE_DATETIME
		53:  true, // TYPE_MISMATCH
		69:  true, // ARGUMENT_OUT_OF_BOUND
		70:  true, // CANNOT_CONVERT_TYPE
		72:  true, // CANNOT_PARSE_NUMBER
		117: true, // INCORRECT_DATA
		131: true, // TOO_LARGE_STRING_SIZE
		190: true, // SIZES_OF_ARRAYS_DONT_MATCH
		321: true, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
		395: true, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
		469: true, // VIOLATED_CONSTRAINT
	}
	// serverErrors say that the server cannot take inserts now: retry, never dead-letter.
	serverErrors = map[int32]bool{
		159: true, // TIMEOUT_EXCEEDED
		164: true, // READONLY
		202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
		203: true, // NO_FREE_CONNECTION
		209: true, // SOCKET_TIMEOUT
		210: true, // NETWORK_ERROR
		236: true, // ABORTED
		241: true, // MEMORY_LIMIT_EXCEEDED
		242: true, // TABLE_IS_READ_ONLY
		252: true, // TOO_MANY_PARTS
		319: true, // UNKNOWN_STATUS_OF_INSERT
		394: true, // QUERY_WAS_CANCELLED
		425: true, // SYSTEM_ERROR
		439: true, // CANNOT_SCHEDULE_TASK
		999: true, // KEEPER_EXCEPTION
	}
)

// transient reports whether an insert error is about reaching ClickHouse or its load, so that
// the same insert may succeed later.
func transient(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return serverErrors[ex.Code]
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sqldriver.ErrBadConn) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.As(err, &ne)
}

// rejectsData reports whether ClickHouse said the data is wrong.
func rejectsData(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && dataErrors[ex.Code]
}
