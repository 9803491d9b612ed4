-- What each row really records.
--
-- Every column added here has a DEFAULT that derives it, for rows stored before, from what they
-- already hold: ClickHouse computes a DEFAULT for old parts when they are read, so this migration
-- rewrites nothing and drops nothing. The enricher fills the columns itself for new rows.

-- audit_events.dry_run: the request was a dry run (dryRun in the query of a create, update or
-- patch, or in the DeleteOptions of a delete): whatever its status, it changed nothing.
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS dry_run Bool
    DEFAULT match(request_uri, '[?&]dryRun=') OR (verb IN ('delete', 'deletecollection') AND JSONLength(request_object, 'dryRun') > 0)
    CODEC(ZSTD(1)) AFTER code;

-- audit_events.actor_kind: who acted, in the auditors' terms: human, agent (a member of an agent
-- group), service-account (in-cluster automation outside the control plane), control-plane
-- (kube-apiserver itself, controllers, the scheduler, nodes, the service accounts of kube-system
-- and of Gatehouse's own components), anonymous. The enricher classifies new rows with its
-- --agent-groups and --control-plane-namespaces; older rows by the defaults below.
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS actor_kind LowCardinality(String)
    DEFAULT multiIf(
        user = 'system:anonymous', 'anonymous',
        user = 'system:apiserver' OR startsWith(user, 'system:kube-') OR startsWith(user, 'system:node:')
            OR has(user_groups, 'system:nodes')
            OR startsWith(user, 'system:serviceaccount:kube-system:') OR startsWith(user, 'system:serviceaccount:gatehouse:'), 'control-plane',
        startsWith(user, 'system:serviceaccount:'), 'service-account',
        has(user_groups, 'agents'), 'agent',
        'human')
    CODEC(ZSTD(1)) AFTER user;

-- The validating webhook's decision on this very request, from the audit annotations it returned
-- (kube-apiserver writes them into the request's audit event, prefixed with the webhook's name):
-- the decision record's ID (gateway_decisions.id), its policy, rule and action, and the approval
-- the call was held for or admitted under. Only annotations of Gatehouse's own webhooks are read.
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS admission_decision_id String DEFAULT '' CODEC(ZSTD(1)) AFTER approval_id;
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS admission_policy LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER admission_decision_id;
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS admission_rule LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER admission_policy;
ALTER TABLE {{.DB}}.audit_events
    ADD COLUMN IF NOT EXISTS admission_action LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER admission_rule;
ALTER TABLE {{.DB}}.audit_events
    ADD INDEX IF NOT EXISTS idx_admission_decision_id admission_decision_id TYPE bloom_filter(0.001) GRANULARITY 1;

-- gateway_requests.held_audit_id: the Audit-ID of the first attempt of a call admission held for
-- approval (trail.Request.HeldAuditID); its audit event is the hold, joined to this record.
-- dry_run: the proxy forwarded the call as a dry run.
ALTER TABLE {{.DB}}.gateway_requests
    ADD COLUMN IF NOT EXISTS held_audit_id String DEFAULT '' CODEC(ZSTD(1)) AFTER audit_id;
ALTER TABLE {{.DB}}.gateway_requests
    ADD COLUMN IF NOT EXISTS dry_run Bool DEFAULT false CODEC(ZSTD(1)) AFTER code;
-- gateway_requests.actor_kind: as audit_events.actor_kind, for the identity the gateway verified.
ALTER TABLE {{.DB}}.gateway_requests
    ADD COLUMN IF NOT EXISTS actor_kind LowCardinality(String)
    DEFAULT multiIf(startsWith(user, 'system:serviceaccount:'), 'service-account', has(user_groups, 'agents'), 'agent', 'human')
    CODEC(ZSTD(1)) AFTER user;
ALTER TABLE {{.DB}}.gateway_requests
    ADD INDEX IF NOT EXISTS idx_held_audit_id held_audit_id TYPE bloom_filter(0.001) GRANULARITY 1;

-- approvals: the verified user behind a requester who impersonated (kubectl --as), and the reason
-- the requester gave (masked), as the approval records carry them.
ALTER TABLE {{.DB}}.approvals
    ADD COLUMN IF NOT EXISTS original_user LowCardinality(String) DEFAULT '' CODEC(ZSTD(1)) AFTER requester_subject;
ALTER TABLE {{.DB}}.approvals
    ADD COLUMN IF NOT EXISTS requester_reason String DEFAULT '' CODEC(ZSTD(1)) AFTER original_user;
