-- The order in which JetStream stored each decision record, which no publisher chooses: the
-- views take a decision's first attempt by it (views.sql, decision_summary).
--
-- stream_sequence is the stream sequence of the GATEHOUSE_TRAIL message that carried the
-- record, record_index the record's ordinal among the message's non-blank lines (from 1): a
-- message holds several decisions of one session (trail.Publisher), and a copy JetStream
-- delivered again has the same sequence and ordinal. Rows stored before this migration, and
-- rows an enricher older than it still inserts, read 0 from both: the columns' implicit
-- default, computed when old parts are read, so this migration rewrites nothing.
--
-- Both are part of the table's key: without them two rows of the same (session_id, time, id)
-- collapse at a merge to the one inserted last, so a copy of an attempt JetStream stored again
-- later (a re-publish beyond the duplicate window), or a record forged with an attempt's
-- session, time and ID, would replace the attempt stored first. Only a redelivery (same place in
-- the stream) collapses now. A column added to the sorting key takes no DEFAULT expression, and
-- both must be added in the statement that extends the key (ALTER ORDER BY).
ALTER TABLE {{.DB}}.gateway_decisions
    ADD COLUMN IF NOT EXISTS stream_sequence UInt64 CODEC(Delta(8), ZSTD(1)) AFTER ingested_at,
    ADD COLUMN IF NOT EXISTS record_index UInt32 CODEC(ZSTD(1)) AFTER stream_sequence,
    MODIFY ORDER BY (session_id, time, id, stream_sequence, record_index);
-- The decision IDs: the trail counts, for an audit event without a session, the sessions that
-- hold its decision's ID at any time (views.sql, trail), and trail_for reads only the granules
-- that may hold the IDs of its window's events.
ALTER TABLE {{.DB}}.gateway_decisions
    ADD INDEX IF NOT EXISTS idx_id id TYPE bloom_filter(0.001) GRANULARITY 1;
