-- The order in which JetStream stored each decision record, which no publisher chooses: the
-- views take a decision's first attempt by it (views.sql, decision_summary).
--
-- stream_sequence is the stream sequence of the GATEHOUSE_TRAIL message that carried the
-- record, record_index the record's line in that message (from 1): a message holds several
-- decisions of one session (trail.Publisher), and a copy JetStream delivered again has the same
-- sequence and lines. Rows stored before this migration, and rows an enricher older than it
-- still inserts, read 0 from both: the columns' default, computed when old parts are read, so
-- this migration rewrites nothing.
ALTER TABLE {{.DB}}.gateway_decisions
    ADD COLUMN IF NOT EXISTS stream_sequence UInt64 DEFAULT 0 CODEC(Delta(8), ZSTD(1)) AFTER ingested_at;
ALTER TABLE {{.DB}}.gateway_decisions
    ADD COLUMN IF NOT EXISTS record_index UInt32 DEFAULT 0 CODEC(ZSTD(1)) AFTER stream_sequence;
-- The decision IDs: the trail counts, for an audit event without a session, the sessions that
-- hold its decision's ID at any time (views.sql, trail), and trail_for reads only the granules
-- that may hold the IDs of its window's events.
ALTER TABLE {{.DB}}.gateway_decisions
    ADD INDEX IF NOT EXISTS idx_id id TYPE bloom_filter(0.001) GRANULARITY 1;
