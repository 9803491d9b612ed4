-- Session recordings and the records of long requests.
--
-- A long request (a watch, followed logs, exec, attach, port-forward) has two gateway records:
-- its open record (phase 'Open', id '<record id>/open'), stored before the proxy forwarded it, and
-- the record of the finished request (phase ''). A request with only an open record is still
-- streaming, or its proxy stopped while it was (the open_streams view). recording_id names the
-- recording of an exec, attach or port-forward session.
ALTER TABLE {{.DB}}.gateway_requests
    ADD COLUMN IF NOT EXISTS phase LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER error;
ALTER TABLE {{.DB}}.gateway_requests
    ADD COLUMN IF NOT EXISTS recording_id String DEFAULT '' CODEC(ZSTD(1)) AFTER phase;

-- One row per chunk of a session recording (trail.Recording), as the proxy published it: asciicast
-- v3 for exec and attach, connection events for port-forward, masked by the proxy. The chunks of
-- a recording form a hash chain (hash covers the chunk and prev_hash, the hash of the chunk
-- before it), which `gatehouse sessions verify` checks; data is stored as published, so that the
-- chain verifies. A chunk stored twice is one row (ReplacingMergeTree, same sorting key).
CREATE TABLE IF NOT EXISTS {{.DB}}.session_recordings
(
    recording_id          String CODEC(ZSTD(1)),
    seq                   UInt32 CODEC(ZSTD(1)),
    session_id            String CODEC(ZSTD(1)),
    -- audit_id: the Audit-ID of the upstream attempt the session ran on; recording_id is the
    -- id of the request's gateway record (gateway_requests.id).
    audit_id              String CODEC(ZSTD(1)),
    -- start: the time of the chunk's first byte; time: when the chunk was published.
    start                 DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    source                LowCardinality(String) CODEC(ZSTD(1)),
    final                 Bool CODEC(ZSTD(1)),
    format                LowCardinality(String) CODEC(ZSTD(1)),
    subresource           LowCardinality(String) CODEC(ZSTD(1)),
    namespace             LowCardinality(String) CODEC(ZSTD(1)),
    pod                   String CODEC(ZSTD(1)),
    container             String CODEC(ZSTD(1)),
    command               Array(String) CODEC(ZSTD(1)),
    user                  LowCardinality(String) CODEC(ZSTD(1)),
    data                  String CODEC(ZSTD(3)),
    prev_hash             String CODEC(ZSTD(1)),
    hash                  String CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_recording_id recording_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_audit_id audit_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(start)
PRIMARY KEY (session_id, recording_id)
ORDER BY (session_id, recording_id, seq)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
