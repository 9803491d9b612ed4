-- dead_letters: rows ClickHouse rejected for good (a constraint, a value out of range for its
-- column, any error that is not about ClickHouse being unreachable or overloaded), so that one
-- bad row does not block its stream: the enricher isolates the row, stores it here as JSON,
-- already masked, with the error and the JetStream message it came from, and stores the rest of
-- its batch where it belongs. Auditors see every dead letter here; none is dropped. Keyed by
-- the table the row was meant for and the record (audit ID, stage and request fingerprint for
-- audit events; the record ID for trail records), so a batch delivered twice is one row.
CREATE TABLE IF NOT EXISTS {{.DB}}.dead_letters
(
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    target_table          LowCardinality(String) CODEC(ZSTD(1)),
    record_key            String CODEC(ZSTD(1)),
    stream                LowCardinality(String) CODEC(ZSTD(1)),
    stream_sequence       UInt64 CODEC(ZSTD(1)),
    subject               LowCardinality(String) CODEC(ZSTD(1)),
    error                 String CODEC(ZSTD(1)),
    -- The rejected row, column name to value, as JSON.
    row                   String CODEC(ZSTD(3)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (target_table, record_key, stream, stream_sequence)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
