-- Gatehouse enricher schema, version 1: one table per record type.
--
-- Habits of the OpenTelemetry ClickHouse exporter: DateTime64 timestamps with Delta+ZSTD,
-- LowCardinality for small vocabularies, Map columns for extras and annotations, bloom-filter
-- skip indexes on user, session and IDs, daily partitions. Retention (TTL) is applied by the
-- migrator after this file, from its options.
--
-- Every table is a ReplacingMergeTree whose sorting key identifies a record: a record stored
-- twice (a retry of kube-apiserver, a redelivery after a crash) is one row after merges and in
-- every query that reads with FINAL, which the views do.

CREATE TABLE IF NOT EXISTS {{.DB}}.audit_events
(
    -- Identity of the event: kube-apiserver's auditID (the Audit-ID header when a client sent
    -- one), the stage, and a fingerprint of the request (received time, verb, URI, user, source)
    -- that tells apart distinct requests sharing an auditID.
    audit_id              String CODEC(ZSTD(1)),
    stage                 LowCardinality(String) CODEC(ZSTD(1)),
    event_key             UInt64 CODEC(ZSTD(1)),
    request_received_at   DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    stage_at              DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    level                 LowCardinality(String) CODEC(ZSTD(1)),
    verb                  LowCardinality(String) CODEC(ZSTD(1)),
    request_uri           String CODEC(ZSTD(1)),
    api_group             LowCardinality(String) CODEC(ZSTD(1)),
    api_version           LowCardinality(String) CODEC(ZSTD(1)),
    resource              LowCardinality(String) CODEC(ZSTD(1)),
    subresource           LowCardinality(String) CODEC(ZSTD(1)),
    namespace             LowCardinality(String) CODEC(ZSTD(1)),
    name                  String CODEC(ZSTD(1)),
    object_uid            String CODEC(ZSTD(1)),
    -- user is the identity the request ran as: the impersonated user when there is one.
    user                  LowCardinality(String) CODEC(ZSTD(1)),
    user_uid              String CODEC(ZSTD(1)),
    user_groups           Array(LowCardinality(String)) CODEC(ZSTD(1)),
    user_extra            Map(LowCardinality(String), Array(String)) CODEC(ZSTD(1)),
    -- authenticated_user is who authenticated: the gateway's service account for gateway traffic.
    authenticated_user    LowCardinality(String) CODEC(ZSTD(1)),
    authenticated_groups  Array(LowCardinality(String)) CODEC(ZSTD(1)),
    impersonated          Bool CODEC(ZSTD(1)),
    -- The gateway's attributes, from the impersonation extras (gatehouse.dev/*).
    session_id            String CODEC(ZSTD(1)),
    issuer                LowCardinality(String) CODEC(ZSTD(1)),
    subject               String CODEC(ZSTD(1)),
    client                LowCardinality(String) CODEC(ZSTD(1)),
    approval_id           String CODEC(ZSTD(1)),
    original_user         LowCardinality(String) CODEC(ZSTD(1)),
    source_ips            Array(String) CODEC(ZSTD(1)),
    user_agent            LowCardinality(String) CODEC(ZSTD(1)),
    -- responseStatus; code 0 when the stage has none.
    code                  UInt16 CODEC(ZSTD(1)),
    status                LowCardinality(String) CODEC(ZSTD(1)),
    reason                LowCardinality(String) CODEC(ZSTD(1)),
    message               String CODEC(ZSTD(1)),
    annotations           Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    -- Masked request and response objects (JSON), empty below the RequestResponse level.
    request_object        String CODEC(ZSTD(1)),
    response_object       String CODEC(ZSTD(1)),
    masked_fields         UInt32 CODEC(ZSTD(1)),
    masked_by             Map(LowCardinality(String), UInt32) CODEC(ZSTD(1)),
    -- truncated: the objects were dropped (too large for one message, or not maskable).
    truncated             Bool CODEC(ZSTD(1)),
    -- origin: webhook or file.
    origin                LowCardinality(String) CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_user user TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_audit_id audit_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_approval_id approval_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(request_received_at)
PRIMARY KEY (user, request_received_at)
ORDER BY (user, request_received_at, audit_id, stage, event_key)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {{.DB}}.gateway_requests
(
    id                    String CODEC(ZSTD(1)),
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    source                LowCardinality(String) CODEC(ZSTD(1)),
    audit_id              String CODEC(ZSTD(1)),
    session_id            String CODEC(ZSTD(1)),
    user                  LowCardinality(String) CODEC(ZSTD(1)),
    user_uid              String CODEC(ZSTD(1)),
    user_groups           Array(LowCardinality(String)) CODEC(ZSTD(1)),
    user_extra            Map(LowCardinality(String), Array(String)) CODEC(ZSTD(1)),
    issuer                LowCardinality(String) CODEC(ZSTD(1)),
    subject               String CODEC(ZSTD(1)),
    client                LowCardinality(String) CODEC(ZSTD(1)),
    source_ip             String CODEC(ZSTD(1)),
    verb                  LowCardinality(String) CODEC(ZSTD(1)),
    api_group             LowCardinality(String) CODEC(ZSTD(1)),
    api_version           LowCardinality(String) CODEC(ZSTD(1)),
    resource              LowCardinality(String) CODEC(ZSTD(1)),
    subresource           LowCardinality(String) CODEC(ZSTD(1)),
    namespace             LowCardinality(String) CODEC(ZSTD(1)),
    name                  String CODEC(ZSTD(1)),
    path                  String CODEC(ZSTD(1)),
    code                  UInt16 CODEC(ZSTD(1)),
    latency_ns            Int64 CODEC(ZSTD(1)),
    duration_ns           Int64 CODEC(ZSTD(1)),
    bytes_in              Int64 CODEC(ZSTD(1)),
    bytes_out             Int64 CODEC(ZSTD(1)),
    masked_fields         UInt32 CODEC(ZSTD(1)),
    masked_by             Map(LowCardinality(String), UInt32) CODEC(ZSTD(1)),
    -- The policy decision the gateway made, if any.
    policy                LowCardinality(String) CODEC(ZSTD(1)),
    rule                  LowCardinality(String) CODEC(ZSTD(1)),
    action                LowCardinality(String) CODEC(ZSTD(1)),
    decision_message      String CODEC(ZSTD(1)),
    approval_id           String CODEC(ZSTD(1)),
    error                 String CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_user user TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_audit_id audit_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_approval_id approval_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
PRIMARY KEY (session_id, time)
ORDER BY (session_id, time, id)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {{.DB}}.gateway_decisions
(
    id                    String CODEC(ZSTD(1)),
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    source                LowCardinality(String) CODEC(ZSTD(1)),
    -- component: proxy, validating-webhook or mutating-webhook.
    component             LowCardinality(String) CODEC(ZSTD(1)),
    audit_id              String CODEC(ZSTD(1)),
    admission_uid         String CODEC(ZSTD(1)),
    session_id            String CODEC(ZSTD(1)),
    user                  LowCardinality(String) CODEC(ZSTD(1)),
    user_groups           Array(LowCardinality(String)) CODEC(ZSTD(1)),
    issuer                LowCardinality(String) CODEC(ZSTD(1)),
    subject               String CODEC(ZSTD(1)),
    verb                  LowCardinality(String) CODEC(ZSTD(1)),
    api_group             LowCardinality(String) CODEC(ZSTD(1)),
    api_version           LowCardinality(String) CODEC(ZSTD(1)),
    resource              LowCardinality(String) CODEC(ZSTD(1)),
    subresource           LowCardinality(String) CODEC(ZSTD(1)),
    namespace             LowCardinality(String) CODEC(ZSTD(1)),
    name                  String CODEC(ZSTD(1)),
    via_gateway           Bool CODEC(ZSTD(1)),
    dry_run               Bool CODEC(ZSTD(1)),
    policy                LowCardinality(String) CODEC(ZSTD(1)),
    rule                  LowCardinality(String) CODEC(ZSTD(1)),
    -- action: allow, deny or requireApproval.
    action                LowCardinality(String) CODEC(ZSTD(1)),
    message               String CODEC(ZSTD(1)),
    approval_id           String CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_user user TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_audit_id audit_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_admission_uid admission_uid TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
PRIMARY KEY (session_id, time)
ORDER BY (session_id, time, id)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- One row per session record: Started, Active (periodically) and Ended.
CREATE TABLE IF NOT EXISTS {{.DB}}.sessions
(
    id                    String CODEC(ZSTD(1)),
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    source                LowCardinality(String) CODEC(ZSTD(1)),
    session_id            String CODEC(ZSTD(1)),
    label                 String CODEC(ZSTD(1)),
    event                 LowCardinality(String) CODEC(ZSTD(1)),
    user                  LowCardinality(String) CODEC(ZSTD(1)),
    user_groups           Array(LowCardinality(String)) CODEC(ZSTD(1)),
    issuer                LowCardinality(String) CODEC(ZSTD(1)),
    subject               String CODEC(ZSTD(1)),
    client                LowCardinality(String) CODEC(ZSTD(1)),
    source_ip             String CODEC(ZSTD(1)),
    started               DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    last_activity         DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    requests              Int64 CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_user user TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
PRIMARY KEY (session_id, time)
ORDER BY (session_id, time, id)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- One row per approval record (trail.Approval): Requested, Voted, Approved, Denied, Expired,
-- GrantUsed, as the approval broker publishes them.
CREATE TABLE IF NOT EXISTS {{.DB}}.approvals
(
    id                    String CODEC(ZSTD(1)),
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    source                LowCardinality(String) CODEC(ZSTD(1)),
    approval_id           String CODEC(ZSTD(1)),
    event                 LowCardinality(String) CODEC(ZSTD(1)),
    session_id            String CODEC(ZSTD(1)),
    -- Who asked.
    requester             LowCardinality(String) CODEC(ZSTD(1)),
    requester_groups      Array(LowCardinality(String)) CODEC(ZSTD(1)),
    requester_issuer      LowCardinality(String) CODEC(ZSTD(1)),
    requester_subject     String CODEC(ZSTD(1)),
    -- The operation held for approval, and the fingerprint its grant is bound to.
    verb                  LowCardinality(String) CODEC(ZSTD(1)),
    api_group             LowCardinality(String) CODEC(ZSTD(1)),
    api_version           LowCardinality(String) CODEC(ZSTD(1)),
    resource              LowCardinality(String) CODEC(ZSTD(1)),
    subresource           LowCardinality(String) CODEC(ZSTD(1)),
    namespace             LowCardinality(String) CODEC(ZSTD(1)),
    name                  String CODEC(ZSTD(1)),
    fingerprint           String CODEC(ZSTD(1)),
    -- The rule that asked for approval, and why.
    policy                LowCardinality(String) CODEC(ZSTD(1)),
    rule                  LowCardinality(String) CODEC(ZSTD(1)),
    policy_message        String CODEC(ZSTD(1)),
    approver_groups       Array(LowCardinality(String)) CODEC(ZSTD(1)),
    required              UInt16 CODEC(ZSTD(1)),
    -- Who caused this event (an approver for Voted, Approved, Denied) and what they said.
    actor                 LowCardinality(String) CODEC(ZSTD(1)),
    reason                String CODEC(ZSTD(1)),
    -- Everyone who approved so far.
    approvers             Array(String) CODEC(ZSTD(1)),
    -- path: proxy (held at the gateway) or admission (a direct call stopped by the webhook).
    path                  LowCardinality(String) CODEC(ZSTD(1)),
    expires_at            DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    -- The AdmissionReview UID of the webhook call that used the grant (GrantUsed): kube-apiserver's
    -- ID of that one webhook call, not the request's Audit-ID (see migration 6).
    admission_uid         String CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),

    INDEX idx_requester requester TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
PRIMARY KEY (approval_id, time)
ORDER BY (approval_id, time, id)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- Messages the enricher could not decode. They are acknowledged (they would fail forever) and
-- remain in their JetStream stream, by sequence, until the stream's MaxAge.
CREATE TABLE IF NOT EXISTS {{.DB}}.ingest_errors
(
    time                  DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    stream                LowCardinality(String) CODEC(ZSTD(1)),
    stream_sequence       UInt64 CODEC(ZSTD(1)),
    subject               LowCardinality(String) CODEC(ZSTD(1)),
    bytes                 UInt64 CODEC(ZSTD(1)),
    error                 String CODEC(ZSTD(1)),
    ingested_at           DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (stream, stream_sequence)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;
