-- Views over the tables of the migrations. They hold no data and are replaced at every start,
-- so their definitions follow the enricher's options (the gateway grace period).
--
-- Every view reads its tables with FINAL (or LIMIT 1 BY the record's key): a record stored twice
-- counts once even before ClickHouse has merged the parts that hold it. Subqueries that only ask
-- whether a record exists, or count what a copy does not change, read without it.

-- decision_summary: one row per policy decision Gatehouse recorded: per decision ID and session
-- (gateway_decisions, without the copies a redelivery left). A decision made in admission is tied
-- to the request it decided by its ID: the validating webhook returns it as an audit annotation,
-- which kube-apiserver writes into that request's audit event (audit_events.admission_decision_id).
-- admission_uid is kube-apiserver's ID of the one webhook call; it is not the Audit-ID.
--
-- The webhook derives the ID from the AdmissionReview's UID, so a review kube-apiserver sent again
-- is the same decision; each attempt the webhook decided is its own row in gateway_decisions. The
-- row here has the columns and time of the attempt stored first: the one of the lowest
-- (stream_sequence, record_index), the JetStream message that carried it and the record's
-- ordinal among its non-blank lines, an order JetStream gives and no publisher chooses. So a
-- record published later under the ID changes neither the row's columns nor its time, whatever
-- time it claims, and cannot move the decision out of a window of time; the place is part of
-- gateway_decisions' key, so no merge replaces a row with a later stored one of the same
-- (session, time, ID). Exceptions: rows without a sequence (stored before migration 7, or by an
-- enricher older than it, during a rollout or after a rollback) count as stored before every row
-- with one, and among themselves by the time they claim (a copy of such a row, stored again, has
-- the same time, so a merge cannot change which is first): a record forged, dated earlier, while
-- such an enricher runs takes the row of a decision it stores. Re-creating the GATEHOUSE_TRAIL stream restarts its sequence (gatehouse nats provision
-- sets no first sequence): a record stored in the new stream under an ID stored in the old one
-- counts as stored first, unless the new stream was created with a first_seq above the old
-- one's last sequence. Two replicas that decide a review within their publishers' flush interval
-- may have their attempts stored in the other order: the row is then the later decided one's.
-- attempts says how many attempts are stored (distinct times) and last_attempt_time the latest
-- time one of them claims (= time when there was one); the trail shows, with each request, the
-- first stored attempt with the action kube-apiserver acted on (the action of its audit
-- annotations). A record under the ID in another session is another decision (another row); one
-- in the same session is one more attempt, so a record forged under an existing decision's ID
-- shows as an extra attempt and erases nothing (one claiming an existing attempt's exact time is
-- stored, but not counted). A copy of an attempt is not one: a redelivery has its key (session,
-- time, ID and place) and is stored once; a copy JetStream stored again (a re-publish beyond its
-- duplicate window) is a row of gateway_decisions of its own, which this view counts once.
-- A condition on session_id reads only that session's rows, one on time only the parts of that
-- time (ClickHouse prunes by the table's key); one on decision_id alone reads the ID column of
-- every row. The session, ID, time and place in the stream of every decision are read to count
-- its attempts.
{{define "storedOrder"}}
{{- /* The order in which JetStream stored a decision record, as one number that orders as
       (stream_sequence, record_index, time) would: ClickHouse compares it faster than a tuple.
       A time before 1970 counts as 1970. */ -}}
bitOr(bitOr(bitShiftLeft(toUInt256(stream_sequence), 96), bitShiftLeft(toUInt256(record_index), 64)),
      toUInt256(greatest(toUnixTimestamp64Micro(time), 0)))
{{- end}}
CREATE OR REPLACE VIEW {{.DB}}.decision_summary SQL SECURITY DEFINER AS
SELECT
    d.id AS decision_id,
    d.time AS time,
    d.component AS component,
    d.audit_id AS audit_id,
    d.admission_uid AS admission_uid,
    d.session_id AS session_id,
    d.user AS user,
    d.verb AS verb,
    d.resource AS resource,
    d.subresource AS subresource,
    d.namespace AS namespace,
    d.name AS name,
    d.via_gateway AS via_gateway,
    d.dry_run AS dry_run,
    d.policy AS policy,
    d.rule AS rule,
    d.action AS action,
    d.message AS message,
    d.admitted AS admitted,
    d.approval_id AS approval_id,
    l.attempts AS attempts,
    l.last_attempt_time AS last_attempt_time
FROM
(
    -- The first stored attempt of each decision (by storedOrder): its key, on which d is joined,
    -- so that a copy stored at another place in the stream (a row of its own) is not a second row.
    -- A copy of an attempt has its time: uniqExact counts it once without FINAL; so is a record
    -- claiming an attempt's time exactly, which is stored but not counted.
    -- It is the join's left side so that ClickHouse first reads the attempts the query's
    -- conditions select (the right side), then aggregates here only the decisions they hold (a
    -- runtime filter on the join's keys).
    SELECT session_id, id,
           argMin((time, stream_sequence, record_index), {{template "storedOrder"}}) AS first,
           first.1 AS first_time, first.2 AS first_sequence, first.3 AS first_index,
           uniqExact(time) AS attempts, max(time) AS last_attempt_time
    FROM {{.DB}}.gateway_decisions
    GROUP BY session_id, id
) AS l
INNER JOIN {{.DB}}.gateway_decisions AS d FINAL
    ON d.session_id = l.session_id AND d.id = l.id AND d.time = l.first_time
   AND d.stream_sequence = l.first_sequence AND d.record_index = l.first_index;

-- approval_summary: the state of each approval: who asked for what (and, when they impersonated,
-- who they really were), why they said they needed it, which rule required it, who approved or
-- denied it and what they said.
CREATE OR REPLACE VIEW {{.DB}}.approval_summary SQL SECURITY DEFINER AS
SELECT
    approval_id,
    argMax(event, (time, event IN ('Approved', 'Denied', 'Expired', 'GrantUsed'))) AS state,
    min(time) AS requested_at,
    any(requester) AS requester,
    anyIf(original_user, original_user != '') AS original_user,
    anyIf(requester_reason, requester_reason != '') AS requester_reason,
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
    arraySort(groupUniqArrayIf(concat(actor, ': ', reason), event IN ('Voted', 'Approved', 'Denied') AND reason != '')) AS reasons,
    maxIf(time, event IN ('Approved', 'Denied')) AS decided_at,
    max(expires_at) AS expires_at,
    anyIf(admission_uid, event = 'GrantUsed') AS used_by_admission_uid
FROM {{.DB}}.approvals FINAL
GROUP BY approval_id;

-- session_summary: one row per session of the gateway, from its session records.
CREATE OR REPLACE VIEW {{.DB}}.session_summary SQL SECURITY DEFINER AS
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
    CAST(countIf(event = 'Ended') > 0 AS Bool) AS ended
FROM {{.DB}}.sessions FINAL
GROUP BY session_id;

{{define "trail"}}
{{- if .Window}}
WITH
    -- The time the slice's rows cover (the earliest and latest of its audit events and gateway
    -- records), widened by the longest a call may be held: the gateway's records, decisions and
    -- approvals that can join its rows lie in it, and only they are read.
    (SELECT (min(t), max(t)) FROM
     (
         SELECT request_received_at AS t FROM {{.DB}}.audit_events
         WHERE request_received_at >= {since:DateTime64(6)}
           AND ({session_id:String} = '' OR session_id = {session_id:String})
           AND ({audit_id:String} = '' OR audit_id = {audit_id:String})
         UNION ALL
         SELECT time AS t FROM {{.DB}}.gateway_requests
         WHERE time >= {since:DateTime64(6)}
           AND ({session_id:String} = '' OR session_id = {session_id:String})
           AND ({audit_id:String} = '' OR audit_id = {audit_id:String} OR held_audit_id = {audit_id:String})
     )) AS trail_bounds,
    trail_bounds.1 - toIntervalSecond({{.HoldSeconds}}) AS trail_lo,
    trail_bounds.2 + toIntervalSecond({{.HoldSeconds}}) AS trail_hi
{{- end}}
SELECT
    x.time AS time,
    x.stage_time AS stage_time,
    x.stage AS stage,
    x.audit_id AS audit_id,
    x.route AS route,
    x.attempt AS attempt,
    x.gateway_extras AS gateway_extras,
    x.actor_kind AS actor_kind,
    x.user AS user,
    x.user_groups AS user_groups,
    x.authenticated_user AS authenticated_user,
    x.impersonated AS impersonated,
    x.session_id AS session_id,
    x.issuer AS issuer,
    x.subject AS subject,
    x.client AS client,
    x.original_user AS original_user,
    x.verb AS verb,
    x.api_group AS api_group,
    x.api_version AS api_version,
    x.resource AS resource,
    x.subresource AS subresource,
    x.namespace AS namespace,
    x.name AS name,
    x.request_uri AS request_uri,
    x.code AS code,
    x.dry_run AS dry_run,
    x.outcome AS outcome,
    CAST(x.outcome = 'succeeded' AND x.verb IN ('create', 'update', 'patch', 'delete', 'deletecollection')
         AND x.subresource NOT IN ('exec', 'attach', 'portforward', 'proxy') AS Bool) AS changed,
    x.status AS status,
    x.reason AS reason,
    x.message AS message,
    x.source_ips AS source_ips,
    x.user_agent AS user_agent,
    x.level AS level,
    x.annotations AS annotations,
    x.annotations['authorization.k8s.io/decision'] AS authorization_decision,
    x.annotations['authorization.k8s.io/reason'] AS authorization_reason,
    x.request_object AS request_object,
    x.response_object AS response_object,
    x.masked_fields AS masked_fields,
    x.masked_by AS masked_by,
    x.truncated AS truncated,
    x.decision_id AS decision_id,
    multiIf(x.admission_action = '', if(x.g_action != '', 'proxy', ''),
            x.session_id = '' AND x.impersonated, if(d.id_sessions = 1, d.components[1], ''),
            has(d.sessions, x.session_id), d.components[indexOf(d.sessions, x.session_id)],
            '') AS decision_component,
    if(x.admission_action != '', x.admission_policy, x.g_policy) AS decision_policy,
    if(x.admission_action != '', x.admission_rule, x.g_rule) AS decision_rule,
    if(x.admission_action != '', x.admission_action, x.g_action) AS decision_action,
    multiIf(x.admission_action = '', x.g_decision_message,
            x.session_id = '' AND x.impersonated, if(d.id_sessions = 1, d.messages[1], ''),
            has(d.sessions, x.session_id), d.messages[indexOf(d.sessions, x.session_id)],
            '') AS decision_message,
    x.approval_id AS approval_id,
    a.state AS approval_state,
    a.requester AS approval_requester,
    a.original_user AS approval_original_user,
    a.requester_reason AS approval_requester_reason,
    a.policy_message AS approval_policy_message,
    a.reasons AS approval_reasons,
    a.approvers AS approvers,
    a.denied_by AS approval_denied_by,
    x.gateway_record_id AS gateway_record_id,
    x.held_audit_id AS held_audit_id,
    x.gateway_code AS gateway_code,
    x.gateway_latency_ns AS gateway_latency_ns,
    x.gateway_duration_ns AS gateway_duration_ns,
    x.gateway_source_ip AS gateway_source_ip,
    x.gateway_masked_fields AS gateway_masked_fields,
    x.gateway_error AS gateway_error,
    x.gateway_phase AS gateway_phase,
    x.recording_id AS recording_id,
    x.origin AS origin
FROM
(
    SELECT
        e.request_received_at AS time,
        e.stage_at AS stage_time,
        e.stage AS stage,
        e.audit_id AS audit_id,
        multiIf(g.matched, 'gateway',
                e.session_id != '' AND e.ingested_at > now64(3) - toIntervalSecond({{.GraceSeconds}}), 'pending',
                'bypass') AS route,
        g.attempt AS attempt,
        CAST(e.session_id != '' AS Bool) AS gateway_extras,
        e.actor_kind AS actor_kind,
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
        CAST(e.dry_run OR g.dry_run AS Bool) AS dry_run,
        multiIf(
            g.attempt = 'held', 'held',
            e.stage = 'ResponseStarted', if(g.attempt = 'open', 'open', 'started'),
            e.stage = 'RequestReceived', 'received',
            e.stage = 'Panic', 'failed',
            e.code = 101 OR e.code BETWEEN 200 AND 299, if(e.dry_run OR g.dry_run, 'dry-run', 'succeeded'),
            e.code IN (401, 403), 'denied',
            'failed') AS outcome,
        e.status AS status,
        e.reason AS reason,
        e.message AS message,
        e.source_ips AS source_ips,
        e.user_agent AS user_agent,
        e.level AS level,
        e.annotations AS annotations,
        e.request_object AS request_object,
        e.response_object AS response_object,
        e.masked_fields AS masked_fields,
        e.masked_by AS masked_by,
        e.truncated AS truncated,
        e.admission_decision_id AS decision_id,
        e.admission_policy AS admission_policy,
        e.admission_rule AS admission_rule,
        e.admission_action AS admission_action,
        g.policy AS g_policy,
        g.rule AS g_rule,
        g.action AS g_action,
        g.decision_message AS g_decision_message,
        if(e.approval_id != '', e.approval_id, g.approval_id) AS approval_id,
        g.record_id AS gateway_record_id,
        g.held_audit_id AS held_audit_id,
        g.code AS gateway_code,
        g.latency_ns AS gateway_latency_ns,
        g.duration_ns AS gateway_duration_ns,
        g.source_ip AS gateway_source_ip,
        g.masked_fields AS gateway_masked_fields,
        g.error AS gateway_error,
        g.phase AS gateway_phase,
        g.recording_id AS recording_id,
        e.origin AS origin
    FROM {{.DB}}.audit_events AS e FINAL
    LEFT JOIN
    (
        -- The gateway's records by the Audit-ID of each attempt they sent to kube-apiserver. A call
        -- admission held and the gateway re-sent has two attempts: the held one (the record's
        -- held_audit_id) and the answered one (its audit_id). A long request has an open record
        -- until it ends; the finished record wins over it.
        SELECT
            attempt_audit_id,
            session_id,
            true AS matched,
            argMax(role, rank) AS attempt,
            argMax(id, rank) AS record_id,
            argMax(held_audit_id, rank) AS held_audit_id,
            argMax(issuer, rank) AS issuer,
            argMax(subject, rank) AS subject,
            argMax(client, rank) AS client,
            argMax(source_ip, rank) AS source_ip,
            argMax(code, rank) AS code,
            argMax(dry_run, rank) AS dry_run,
            argMax(latency_ns, rank) AS latency_ns,
            argMax(duration_ns, rank) AS duration_ns,
            argMax(masked_fields, rank) AS masked_fields,
            argMax(policy, rank) AS policy,
            argMax(rule, rank) AS rule,
            argMax(action, rank) AS action,
            argMax(decision_message, rank) AS decision_message,
            argMax(approval_id, rank) AS approval_id,
            argMax(error, rank) AS error,
            argMax(phase, rank) AS phase,
            argMax(recording_id, rank) AS recording_id
        FROM
        (
            SELECT audit_id AS attempt_audit_id, if(phase = 'Open', 'open', 'answered') AS role,
                   (if(phase = 'Open', 1, 3), phase != 'Open') AS rank, *
            FROM {{.DB}}.gateway_requests FINAL
            WHERE audit_id != '' AND session_id != ''
              {{if .Window}}AND time BETWEEN trail_lo AND trail_hi
              AND ({session_id:String} = '' OR session_id = {session_id:String})
              AND ({audit_id:String} = '' OR audit_id = {audit_id:String}){{end}}
            UNION ALL
            SELECT held_audit_id AS attempt_audit_id, 'held' AS role, (2, phase != 'Open') AS rank, *
            FROM {{.DB}}.gateway_requests FINAL
            WHERE held_audit_id != '' AND held_audit_id != audit_id AND session_id != ''
              {{if .Window}}AND time BETWEEN trail_lo AND trail_hi
              AND ({session_id:String} = '' OR session_id = {session_id:String})
              AND ({audit_id:String} = '' OR held_audit_id = {audit_id:String}){{end}}
        )
        GROUP BY attempt_audit_id, session_id
    ) AS g ON g.attempt_audit_id = e.audit_id AND g.session_id = e.session_id
    {{if .Window}}WHERE e.request_received_at >= {since:DateTime64(6)}
      AND ({session_id:String} = '' OR e.session_id = {session_id:String})
      AND ({audit_id:String} = '' OR e.audit_id = {audit_id:String}){{end}}

    UNION ALL

    SELECT
        r.time AS time,
        r.time AS stage_time,
        '' AS stage,
        r.audit_id AS audit_id,
        'gateway-only' AS route,
        if(r.phase = 'Open', 'open', 'answered') AS attempt,
        CAST(r.session_id != '' AS Bool) AS gateway_extras,
        r.actor_kind AS actor_kind,
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
        r.dry_run AS dry_run,
        multiIf(
            r.phase = 'Open', 'open',
            r.code = 101 OR r.code BETWEEN 200 AND 299, if(r.dry_run, 'dry-run', 'succeeded'),
            r.code IN (401, 403), 'denied',
            'failed') AS outcome,
        '' AS status,
        '' AS reason,
        r.error AS message,
        [r.source_ip] AS source_ips,
        '' AS user_agent,
        '' AS level,
        map() AS annotations,
        '' AS request_object,
        '' AS response_object,
        r.masked_fields AS masked_fields,
        r.masked_by AS masked_by,
        false AS truncated,
        '' AS decision_id,
        '' AS admission_policy,
        '' AS admission_rule,
        '' AS admission_action,
        r.policy AS g_policy,
        r.rule AS g_rule,
        r.action AS g_action,
        r.decision_message AS g_decision_message,
        r.approval_id AS approval_id,
        r.id AS gateway_record_id,
        r.held_audit_id AS held_audit_id,
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
        SELECT DISTINCT audit_id, session_id FROM {{.DB}}.audit_events
        WHERE session_id != ''
          {{if .Window}}AND request_received_at BETWEEN trail_lo AND trail_hi
          AND ({session_id:String} = '' OR session_id = {session_id:String})
          AND ({audit_id:String} = '' OR audit_id = {audit_id:String}){{end}}
    ) AS ge ON ge.audit_id = r.audit_id AND ge.session_id = r.session_id
    -- The open record of a request that has finished, or whose re-sent attempt has an open record
    -- of its own, adds nothing.
    WHERE (r.phase != 'Open'
           OR (if(r.held_audit_id != '', r.held_audit_id, r.audit_id) NOT IN
                   (SELECT id FROM {{.DB}}.gateway_requests WHERE phase = ''
                    {{if .Window}}AND time BETWEEN trail_lo AND trail_hi
                    AND ({session_id:String} = '' OR session_id = {session_id:String})
                    AND ({audit_id:String} = '' OR audit_id = {audit_id:String} OR held_audit_id = {audit_id:String}){{end}})
               AND r.id NOT IN
                   (SELECT concat(held_audit_id, '/open') FROM {{.DB}}.gateway_requests WHERE phase = 'Open' AND held_audit_id != ''
                    {{if .Window}}AND time BETWEEN trail_lo AND trail_hi
                    AND ({session_id:String} = '' OR session_id = {session_id:String})
                    AND ({audit_id:String} = '' OR held_audit_id = {audit_id:String}){{end}})))
      {{if .Window}}AND r.time >= {since:DateTime64(6)}
      AND ({session_id:String} = '' OR r.session_id = {session_id:String})
      AND ({audit_id:String} = '' OR r.audit_id = {audit_id:String}){{end}}
) AS x
LEFT JOIN
(
    -- The decision of each audit event's own session (a record under its ID in another session is
    -- another decision), the first stored attempt with the action kube-apiserver acted on: the
    -- webhook decides a review again when kube-apiserver sends it again, and the event's audit
    -- annotations hold the action of the attempt whose answer kube-apiserver used. One row per
    -- decision ID and action, so that no event is joined twice, with per session the first
    -- stored of the attempts with that action (storedOrder): an attempt with another action, or a
    -- record with the same action stored after it (forged under the ID), does not change the
    -- event's row. id_sessions counts the sessions holding the ID at any time, whatever the
    -- action: an audit event without a session whose decision has one (a user the enricher does
    -- not take for a gateway, --gateway-users, impersonated with the session extra, which the
    -- webhook saw and the enricher did not keep) shows the decision of the ID's one session,
    -- never another session's record when two hold the ID, nor a record without a session (one
    -- more session to id_sessions), which the webhook does not write for such an event.
    SELECT ds.id AS id, ds.action AS action, groupArray(ds.session_id) AS sessions, groupArray(ds.first_component) AS components,
           groupArray(ds.first_message) AS messages, any({{if .Window}}n{{else}}ds{{end}}.id_sessions) AS id_sessions
    FROM
    (
        SELECT session_id, id, action,
               argMin(component, {{template "storedOrder"}} AS stored) AS first_component,
               argMin(message, stored) AS first_message
               {{- if not .Window}},
               uniqExact(session_id) OVER (PARTITION BY id) AS id_sessions{{end}}
        FROM {{.DB}}.gateway_decisions FINAL
        {{if .Window}}WHERE time BETWEEN trail_lo AND trail_hi
          AND ({session_id:String} = '' OR session_id = {session_id:String})
          AND id IN (SELECT admission_decision_id FROM {{.DB}}.audit_events
                     WHERE admission_decision_id != '' AND request_received_at >= {since:DateTime64(6)} AND request_received_at <= trail_hi
                       AND ({session_id:String} = '' OR session_id = {session_id:String})
                       AND ({audit_id:String} = '' OR audit_id = {audit_id:String})){{end}}
        GROUP BY session_id, id, action
    ) AS ds
    {{- if .Window}}
    LEFT JOIN
    (
        -- id_sessions as trail counts it, over all time, for the IDs of the window's audit events
        -- that take a decision by it only: impersonated, without a session (none when the window
        -- is one session's).
        SELECT id, uniqExact(session_id) AS id_sessions
        FROM {{.DB}}.gateway_decisions
        WHERE {session_id:String} = ''
          AND id IN (SELECT admission_decision_id FROM {{.DB}}.audit_events
                     WHERE admission_decision_id != '' AND session_id = '' AND impersonated
                       AND request_received_at >= {since:DateTime64(6)} AND request_received_at <= trail_hi
                       AND ({audit_id:String} = '' OR audit_id = {audit_id:String}))
        GROUP BY id
    ) AS n ON n.id = ds.id
    {{- end}}
    GROUP BY ds.id, ds.action
) AS d ON d.id = x.decision_id AND d.action = x.admission_action
LEFT JOIN
{{if .Window}}(
    SELECT * FROM {{.DB}}.approval_summary
    WHERE approval_id IN (SELECT approval_id FROM {{.DB}}.audit_events
                          WHERE approval_id != '' AND request_received_at >= {since:DateTime64(6)} AND request_received_at <= trail_hi
                            AND ({session_id:String} = '' OR session_id = {session_id:String})
                            AND ({audit_id:String} = '' OR audit_id = {audit_id:String})
                          UNION ALL
                          SELECT approval_id FROM {{.DB}}.gateway_requests
                          WHERE approval_id != '' AND time BETWEEN trail_lo AND trail_hi
                            AND ({session_id:String} = '' OR session_id = {session_id:String})
                            AND ({audit_id:String} = '' OR audit_id = {audit_id:String} OR held_audit_id = {audit_id:String}))
){{else}}{{.DB}}.approval_summary{{end}} AS a ON a.approval_id = x.approval_id
{{- if .Window}}
-- FINAL with a skip index (a session's or an Audit-ID's rows) reads only the granules the index
-- selects: every copy of a record has the same key, so a copy never hides in a granule the index
-- skipped, and the exact mode, which reads every granule that overlaps a selected one, is not
-- needed.
SETTINGS use_skip_indexes_if_final_exact_mode = 0
{{- end}}
{{end}}
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
--
-- attempt says which attempt of a gateway call an audit event is: answered (the attempt whose
-- answer the client got), held (the first attempt of a call admission held for approval and the
-- gateway re-sent once approved: the client never saw its 403) or open (a long request whose end
-- the gateway has not recorded).
--
-- outcome says what the row's request did, from its own status, stage and the decision:
--   succeeded  2xx (or 101 for a stream), and not a dry run: a write took effect
--   dry-run    2xx for a dry run: nothing changed
--   held       the held attempt of a call that was re-sent after approval
--   denied     401 or 403: refused by the gateway, admission (policy, approval) or authorization
--   failed     any other error (404, 409, 422, 5xx, a panic)
--   open       a stream still running at the gateway (or cut off when its proxy stopped)
--   started    ResponseStarted of a stream (its ResponseComplete row says how it ended)
-- changed is true only for a write that succeeded (not a dry run, not exec, attach,
-- port-forward or a proxy call).
--
-- Session and approval come only from the gateway's impersonation extras and from the audit
-- annotations of Gatehouse's validating webhook, never from object annotations.
-- A late partner always joins: the view is evaluated at query time.
CREATE OR REPLACE VIEW {{.DB}}.trail SQL SECURITY DEFINER AS
{{template "trail" .}};

-- trail_for: the trail view for a window of time, one session or one Audit-ID, as a parameterized
-- view: SELECT ... FROM trail_for(since = '2026-12-01 00:00:00', session_id = '', audit_id = '')
-- holds the rows of trail with time >= since, of that session and that Audit-ID ('' for any).
-- It gives the same rows as the trail view filtered so, and reads only what can join them (the
-- gateway's records and decisions from {{.HoldSeconds}} s before since, the longest a call may be
-- held for approval): the canned queries read it, and answer in well under a second with tens of
-- millions of audit events.
CREATE OR REPLACE VIEW {{.DB}}.trail_for SQL SECURITY DEFINER AS
{{template "trail" .Windowed}};

{{define "open_streams"}}
SELECT
    o.time AS started,
    if(o.held_audit_id != '', o.held_audit_id, o.audit_id) AS record_id,
    o.audit_id AS audit_id,
    o.held_audit_id AS held_audit_id,
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
    o.approval_id AS approval_id,
    o.recording_id AS recording_id
FROM {{.DB}}.gateway_requests AS o
WHERE o.phase = 'Open'
  {{- if .Window}}
  AND o.time >= {since:DateTime64(6)}
  {{- end}}
  AND if(o.held_audit_id != '', o.held_audit_id, o.audit_id) NOT IN
      (SELECT id FROM {{.DB}}.gateway_requests WHERE phase = ''{{if .Window}} AND time >= {since:DateTime64(6)}{{end}})
  AND o.id NOT IN
      (SELECT concat(held_audit_id, '/open') FROM {{.DB}}.gateway_requests
       WHERE phase = 'Open' AND held_audit_id != ''{{if .Window}} AND time >= {since:DateTime64(6)}{{end}})
-- A record stored twice is the same record: one row each (what FINAL gives, without merging the
-- whole table).
LIMIT 1 BY o.id
{{end}}
-- open_streams: the long requests (watches, followed logs, exec, attach, port-forward) whose
-- start the gateway recorded and whose end it has not: still running, or cut off when their
-- proxy stopped (source names the proxy instance). record_id is the request's record ID (the
-- first attempt's Audit-ID); audit_id the attempt the stream runs on (a re-sent one, for a
-- stream admission held for approval).
CREATE OR REPLACE VIEW {{.DB}}.open_streams SQL SECURITY DEFINER AS
{{template "open_streams" .}};

-- open_streams_for(since): the open streams that started at or after since. A long request's
-- records all carry the time it arrived, so only the records since then are read.
CREATE OR REPLACE VIEW {{.DB}}.open_streams_for SQL SECURITY DEFINER AS
{{template "open_streams" .Windowed}};

-- approval_summary_for(since): the approvals requested at or after since.
CREATE OR REPLACE VIEW {{.DB}}.approval_summary_for SQL SECURITY DEFINER AS
SELECT * FROM {{.DB}}.approval_summary
WHERE approval_id IN (SELECT approval_id FROM {{.DB}}.approvals WHERE event = 'Requested' AND time >= {since:DateTime64(6)});

-- session_summary_for(since): the sessions that made a request at or after since.
CREATE OR REPLACE VIEW {{.DB}}.session_summary_for SQL SECURITY DEFINER AS
SELECT * FROM {{.DB}}.session_summary
WHERE session_id IN (SELECT session_id FROM {{.DB}}.gateway_requests
                     WHERE session_id != '' AND time >= {since:DateTime64(6)} - toIntervalSecond({{.HoldSeconds}}));

-- recording_summary: one row per session recording (exec, attach, port-forward): what ran where,
-- as whom, when, how many chunks are stored, and whether it is complete: its last chunk (final)
-- and every chunk before it are stored (chunks of one recording may be inserted out of order).
CREATE OR REPLACE VIEW {{.DB}}.recording_summary SQL SECURITY DEFINER AS
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
    max(final) AND count() = toUInt64(max(seq)) + 1 AS complete,
    sum(length(data)) AS bytes
FROM {{.DB}}.session_recordings FINAL
GROUP BY recording_id;

-- ingest_error_log and dead_letter_log: the enricher's own trouble, once each (FINAL), for
-- auditors who read views only.
CREATE OR REPLACE VIEW {{.DB}}.ingest_error_log SQL SECURITY DEFINER AS
SELECT * FROM {{.DB}}.ingest_errors FINAL;

CREATE OR REPLACE VIEW {{.DB}}.dead_letter_log SQL SECURITY DEFINER AS
SELECT * FROM {{.DB}}.dead_letters FINAL;
