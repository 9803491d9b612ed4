-- Views over the tables of the migrations. They hold no data and are replaced at every start,
-- so their definitions follow the enricher's options (the gateway grace period).
--
-- Every view reads its tables with FINAL: a record stored twice counts once even before
-- ClickHouse has merged the parts that hold it.

-- decision_summary: the policy decisions of one request (proxy and admission webhooks), by
-- audit ID. The most severe decision wins (deny, then requireApproval, then allow), the latest
-- among equals.
CREATE OR REPLACE VIEW {{.DB}}.decision_summary AS
SELECT
    key AS audit_id,
    argMax(d_component, (severity, d_time)) AS component,
    argMax(d_policy, (severity, d_time)) AS policy,
    argMax(d_rule, (severity, d_time)) AS rule,
    argMax(d_action, (severity, d_time)) AS action,
    argMax(d_message, (severity, d_time)) AS message,
    groupArray((d_component, d_policy, d_rule, d_action, d_message)) AS decisions
FROM
(
    SELECT
        if(audit_id != '', audit_id, admission_uid) AS key,
        time AS d_time,
        component AS d_component,
        policy AS d_policy,
        rule AS d_rule,
        action AS d_action,
        message AS d_message,
        multiIf(action = 'deny', 3, action = 'requireApproval', 2, action = 'allow', 1, 0) AS severity
    FROM {{.DB}}.gateway_decisions FINAL
)
GROUP BY key;

-- approval_summary: the state of each approval: who asked for what, which rule required it,
-- who approved or denied it and what they said, and which call used the grant.
CREATE OR REPLACE VIEW {{.DB}}.approval_summary AS
SELECT
    approval_id,
    argMax(event, time) AS state,
    min(time) AS requested_at,
    any(requester) AS requester,
    any(session_id) AS session_id,
    any(verb) AS verb,
    any(resource) AS resource,
    any(subresource) AS subresource,
    any(namespace) AS namespace,
    any(name) AS name,
    any(policy) AS policy,
    any(rule) AS rule,
    any(policy_message) AS policy_message,
    any(path) AS path,
    max(required) AS required,
    argMax(approvers, time) AS approvers,
    groupUniqArrayIf(actor, event = 'Denied') AS denied_by,
    groupArrayIf(concat(actor, ': ', reason), event IN ('Voted', 'Approved', 'Denied') AND reason != '') AS reasons,
    maxIf(time, event IN ('Approved', 'Denied')) AS decided_at,
    max(expires_at) AS expires_at,
    anyIf(admission_uid, event = 'GrantUsed') AS used_by_audit_id
FROM {{.DB}}.approvals FINAL
GROUP BY approval_id;

-- session_summary: one row per session of the gateway, from its session records.
CREATE OR REPLACE VIEW {{.DB}}.session_summary AS
SELECT
    session_id,
    argMin(label, time) AS label,
    argMin(user, time) AS user,
    argMin(issuer, time) AS issuer,
    argMin(subject, time) AS subject,
    argMin(client, time) AS client,
    argMin(source_ip, time) AS source_ip,
    min(started) AS started,
    max(last_activity) AS last_activity,
    max(requests) AS requests,
    countIf(event = 'Ended') > 0 AS ended
FROM {{.DB}}.sessions FINAL
GROUP BY session_id;

-- trail: the joined trail, the table an auditor queries first. One row per kube-apiserver
-- audit event, joined with the gateway's record of the same request, plus one row per gateway
-- record that has no audit event (a request the gateway refused, or one the audit policy does
-- not log).
--
-- route says how the request reached the API server:
--   gateway       the gateway recorded it: its Audit-ID and session match a gateway record.
--   pending       it carries the gateway's session extras but its gateway record has not arrived
--                 yet; it becomes gateway, or bypass after {{.GraceSeconds}} s.
--   bypass        no gateway record: a direct call (no gateway extras), or gateway extras but no
--                 record within {{.GraceSeconds}} s of its arrival (gateway_extras tells them apart).
--   gateway-only  a gateway record with no audit event.
-- A late partner always joins: the view is evaluated at query time.
CREATE OR REPLACE VIEW {{.DB}}.trail AS
SELECT
    e.request_received_at AS time,
    e.stage_at AS stage_time,
    e.stage AS stage,
    e.audit_id AS audit_id,
    multiIf(g.matched, 'gateway',
            e.session_id != '' AND e.ingested_at > now64(3) - toIntervalSecond({{.GraceSeconds}}), 'pending',
            'bypass') AS route,
    CAST(e.session_id != '' AS Bool) AS gateway_extras,
    e.user AS user,
    e.user_groups AS user_groups,
    e.authenticated_user AS authenticated_user,
    e.impersonated AS impersonated,
    e.session_id AS session_id,
    if(e.issuer != '', e.issuer, g.issuer) AS issuer,
    if(e.subject != '', e.subject, g.subject) AS subject,
    if(e.client != '', e.client, g.client) AS client,
    e.original_user AS original_user,
    e.verb AS verb,
    e.api_group AS api_group,
    e.api_version AS api_version,
    e.resource AS resource,
    e.subresource AS subresource,
    e.namespace AS namespace,
    e.name AS name,
    e.request_uri AS request_uri,
    e.code AS code,
    e.status AS status,
    e.reason AS reason,
    e.message AS message,
    e.source_ips AS source_ips,
    e.user_agent AS user_agent,
    e.level AS level,
    e.annotations AS annotations,
    e.annotations['authorization.k8s.io/decision'] AS authorization_decision,
    e.annotations['authorization.k8s.io/reason'] AS authorization_reason,
    e.request_object AS request_object,
    e.response_object AS response_object,
    e.masked_fields AS masked_fields,
    e.masked_by AS masked_by,
    e.truncated AS truncated,
    if(d.audit_id != '', d.component, if(g.action != '', 'proxy', '')) AS decision_component,
    if(d.audit_id != '', d.policy, g.policy) AS decision_policy,
    if(d.audit_id != '', d.rule, g.rule) AS decision_rule,
    if(d.audit_id != '', d.action, g.action) AS decision_action,
    if(d.audit_id != '', d.message, g.decision_message) AS decision_message,
    d.decisions AS decisions,
    if(e.approval_id != '', e.approval_id, g.approval_id) AS approval_id,
    a.state AS approval_state,
    a.requester AS approval_requester,
    a.policy_message AS approval_policy_message,
    a.reasons AS approval_reasons,
    a.approvers AS approvers,
    g.record_id AS gateway_record_id,
    g.code AS gateway_code,
    g.latency_ns AS gateway_latency_ns,
    g.duration_ns AS gateway_duration_ns,
    g.source_ip AS gateway_source_ip,
    g.masked_fields AS gateway_masked_fields,
    g.error AS gateway_error,
    g.record_phase AS gateway_phase,
    g.record_recording_id AS recording_id,
    e.origin AS origin
FROM {{.DB}}.audit_events AS e FINAL
LEFT JOIN
(
    SELECT
        audit_id,
        session_id,
        true AS matched,
        argMax(id, (time, phase != 'Open')) AS record_id,
        argMax(issuer, (time, phase != 'Open')) AS issuer,
        argMax(subject, (time, phase != 'Open')) AS subject,
        argMax(client, (time, phase != 'Open')) AS client,
        argMax(source_ip, (time, phase != 'Open')) AS source_ip,
        argMax(code, (time, phase != 'Open')) AS code,
        argMax(latency_ns, (time, phase != 'Open')) AS latency_ns,
        argMax(duration_ns, (time, phase != 'Open')) AS duration_ns,
        argMax(masked_fields, (time, phase != 'Open')) AS masked_fields,
        argMax(policy, (time, phase != 'Open')) AS policy,
        argMax(rule, (time, phase != 'Open')) AS rule,
        argMax(action, (time, phase != 'Open')) AS action,
        argMax(decision_message, (time, phase != 'Open')) AS decision_message,
        argMax(approval_id, (time, phase != 'Open')) AS approval_id,
        argMax(error, (time, phase != 'Open')) AS error,
        argMax(phase, (time, phase != 'Open')) AS record_phase,
        argMax(recording_id, (time, phase != 'Open')) AS record_recording_id
    FROM {{.DB}}.gateway_requests FINAL
    WHERE session_id != '' AND audit_id != ''
    GROUP BY audit_id, session_id
) AS g ON g.audit_id = e.audit_id AND g.session_id = e.session_id
LEFT JOIN {{.DB}}.decision_summary AS d ON d.audit_id = e.audit_id
LEFT JOIN {{.DB}}.approval_summary AS a ON a.approval_id = e.approval_id

UNION ALL

SELECT
    r.time AS time,
    r.time AS stage_time,
    '' AS stage,
    r.audit_id AS audit_id,
    'gateway-only' AS route,
    CAST(r.session_id != '' AS Bool) AS gateway_extras,
    r.user AS user,
    r.user_groups AS user_groups,
    '' AS authenticated_user,
    false AS impersonated,
    r.session_id AS session_id,
    r.issuer AS issuer,
    r.subject AS subject,
    r.client AS client,
    '' AS original_user,
    r.verb AS verb,
    r.api_group AS api_group,
    r.api_version AS api_version,
    r.resource AS resource,
    r.subresource AS subresource,
    r.namespace AS namespace,
    r.name AS name,
    r.path AS request_uri,
    r.code AS code,
    '' AS status,
    '' AS reason,
    r.error AS message,
    [r.source_ip] AS source_ips,
    '' AS user_agent,
    '' AS level,
    map() AS annotations,
    '' AS authorization_decision,
    '' AS authorization_reason,
    '' AS request_object,
    '' AS response_object,
    r.masked_fields AS masked_fields,
    r.masked_by AS masked_by,
    false AS truncated,
    if(d.audit_id != '', d.component, if(r.action != '', 'proxy', '')) AS decision_component,
    if(d.audit_id != '', d.policy, r.policy) AS decision_policy,
    if(d.audit_id != '', d.rule, r.rule) AS decision_rule,
    if(d.audit_id != '', d.action, r.action) AS decision_action,
    if(d.audit_id != '', d.message, r.decision_message) AS decision_message,
    d.decisions AS decisions,
    r.approval_id AS approval_id,
    a.state AS approval_state,
    a.requester AS approval_requester,
    a.policy_message AS approval_policy_message,
    a.reasons AS approval_reasons,
    a.approvers AS approvers,
    r.id AS gateway_record_id,
    r.code AS gateway_code,
    r.latency_ns AS gateway_latency_ns,
    r.duration_ns AS gateway_duration_ns,
    r.source_ip AS gateway_source_ip,
    r.masked_fields AS gateway_masked_fields,
    r.error AS gateway_error,
    r.phase AS gateway_phase,
    r.recording_id AS recording_id,
    'gateway' AS origin
FROM {{.DB}}.gateway_requests AS r FINAL
LEFT ANTI JOIN
(
    SELECT DISTINCT audit_id, session_id FROM {{.DB}}.audit_events WHERE session_id != ''
) AS x ON x.audit_id = r.audit_id AND x.session_id = r.session_id
LEFT JOIN {{.DB}}.decision_summary AS d ON d.audit_id = r.audit_id
LEFT JOIN {{.DB}}.approval_summary AS a ON a.approval_id = r.approval_id
-- The open record of a request that has finished adds nothing.
WHERE r.phase != 'Open' OR r.id NOT IN
    (SELECT concat(id, '/open') FROM {{.DB}}.gateway_requests FINAL WHERE phase = '');

-- open_streams: the long requests (watches, followed logs, exec, attach, port-forward) whose
-- start the gateway recorded and whose end it has not: still running, or cut off when their
-- proxy stopped (source names the proxy instance).
CREATE OR REPLACE VIEW {{.DB}}.open_streams AS
SELECT
    o.time AS started,
    replaceOne(o.id, '/open', '') AS record_id,
    o.audit_id AS audit_id,
    o.session_id AS session_id,
    o.source AS source,
    o.user AS user,
    o.client AS client,
    o.source_ip AS source_ip,
    o.verb AS verb,
    o.resource AS resource,
    o.subresource AS subresource,
    o.namespace AS namespace,
    o.name AS name,
    o.path AS path,
    o.recording_id AS recording_id
FROM {{.DB}}.gateway_requests AS o FINAL
WHERE o.phase = 'Open'
  AND o.id NOT IN (SELECT concat(id, '/open') FROM {{.DB}}.gateway_requests FINAL WHERE phase = '');

-- recording_summary: one row per session recording (exec, attach, port-forward): what ran where,
-- as whom, when, how many chunks are stored, and whether the last one (final) is.
CREATE OR REPLACE VIEW {{.DB}}.recording_summary AS
SELECT
    recording_id,
    any(session_id) AS session_id,
    argMax(audit_id, seq) AS audit_id,
    any(format) AS format,
    any(subresource) AS subresource,
    any(namespace) AS namespace,
    any(pod) AS pod,
    any(container) AS container,
    argMin(command, seq) AS command,
    any(user) AS user,
    min(start) AS started,
    max(start) AS last_chunk_at,
    count() AS chunks,
    max(seq) AS last_seq,
    max(final) AS complete,
    sum(length(data)) AS bytes
FROM {{.DB}}.session_recordings FINAL
GROUP BY recording_id;
