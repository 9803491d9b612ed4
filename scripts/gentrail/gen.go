package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options say what to generate.
type Options struct {
	// Database holds the enricher's schema (migrated before).
	Database string
	// Rows is about the number of audit events to generate (within a fraction of a percent: a
	// request has one to three events).
	Rows uint64
	// Days is the span of time the rows cover, ending at End.
	Days int
	// End is when the generated activity ends. Rows are a function of Seed, Rows, Days and End.
	End time.Time
	// Seed varies the data.
	Seed uint64
	// Chunk is the number of requests generated per INSERT.
	Chunk uint64
	// Progress, when set, is told after every INSERT.
	Progress func(table string, done, total uint64)
}

// Stats are the row counts of the tables after generation.
type Stats map[string]uint64

// eventsPerRequest is the average number of audit events a generated request has (streams have
// two stages, held calls two attempts, refusals at the gateway none): measured, so that Rows
// requests are turned into about Rows events.
const eventsPerRequest = 1.091

// The model. Every value of a request is a function of its number r and the seed, so every table
// can be generated on its own, in chunks, server-side, and they agree: the audit events of a
// request carry the Audit-IDs its gateway record, decision and approval name.
//
// Who: 70% control plane (kube-apiserver, controllers, the scheduler, nodes, kube-system service
// accounts), 12% in-cluster automation (service accounts), 10% agents and 5% developers through
// the gateway (sessions of an hour), 3% administrators calling kube-apiserver directly.
// What: reads dominate; the control plane updates status, leases and events; people and agents
// create, patch and delete, exec into pods, read Secrets. Non-control-plane writes and execs are
// decided by the validating webhook: allowed, denied, or held for approval (approved and re-sent,
// denied, expired) when they touch Secrets, RBAC or exec; some are dry runs. Watches and execs
// have a ResponseStarted and a ResponseComplete event; the last few gateway streams are still
// open. One gateway call in 200 is refused by the gateway's own policy and never reaches the API
// server.
var requestExprs = `
    number AS r,
    {seed:UInt64} AS seed,
    {requests:UInt64} AS requests,
    addMicroseconds({start:DateTime64(6, 'UTC')}, toUInt64(r * ({span_us:UInt64} / requests)) + cityHash64(seed, r, 0) % 1000000) AS t,
    cityHash64(seed, r, 1) % 1000 AS a,
    multiIf(a < 700, 'cp', a < 820, 'sa', a < 920, 'agent', a < 970, 'human', 'direct') AS class,
    class IN ('agent', 'human') AS via_gw,
    cityHash64(seed, r, 3) AS h3,
    cityHash64(seed, r, 4) AS h4,
    cityHash64(seed, r, 5) AS h5,
    multiIf(
        class = 'cp', multiIf(h3 % 10 < 2, 'system:apiserver', h3 % 10 < 4, 'system:kube-controller-manager',
            h3 % 10 < 5, 'system:kube-scheduler', h3 % 10 < 8, concat('system:node:node-', toString(h3 % 40)),
            concat('system:serviceaccount:kube-system:', arrayElement(['deployment-controller', 'replicaset-controller',
                'endpointslice-controller', 'namespace-controller', 'job-controller', 'coredns', 'kube-proxy',
                'generic-garbage-collector'], 1 + h3 % 8))),
        class = 'sa', concat('system:serviceaccount:', arrayElement(['ci', 'argocd', 'monitoring', 'shop', 'billing'], 1 + h3 % 5),
            ':', arrayElement(['deployer', 'app-controller', 'prometheus', 'worker'], 1 + intDiv(h3, 5) % 4)),
        class = 'agent', concat('oidc:agent-', toString(h3 % 150)),
        class = 'human', concat('oidc:dev-', toString(h3 % 60)),
        concat('admin-', toString(h3 % 8))) AS usr,
    multiIf(class = 'agent', ['agents', 'system:authenticated'], class = 'human', ['developers', 'system:authenticated'],
        startsWith(usr, 'system:node:'), ['system:nodes', 'system:authenticated'],
        startsWith(usr, 'system:serviceaccount:'), ['system:serviceaccounts', 'system:authenticated'],
        class = 'cp', ['system:authenticated'], ['system:masters', 'system:authenticated']) AS grps,
    multiIf(class = 'agent', 'agent', class IN ('human', 'direct'), 'human', class = 'sa', 'service-account', 'control-plane') AS kind,
    if(via_gw, lower(hex(cityHash64(seed, usr, toStartOfHour(t)))), '') AS session,
    if(via_gw, arrayElement(['kubectl/v1.36.3', 'claude-agent/2.1', 'k9s/0.50', 'client-go/v0.36.6'], 1 + cityHash64(seed, usr) % 4), '') AS client,
    cityHash64(seed, r, 2) % 1000 AS v,
    if(class = 'cp',
       multiIf(v < 300, 'get', v < 400, 'list', v < 500, 'watch', v < 750, 'update', v < 850, 'patch', 'create'),
       multiIf(v < 400, 'get', v < 650, 'list', v < 700, 'watch', v < 800, 'create', v < 850, 'update', v < 920, 'patch',
           v < 975, 'delete', v < 985, 'deletecollection', 'exec')) AS vk,
    if(vk = 'exec', 'create', vk) AS verb,
    multiIf(vk = 'exec', 'pods',
        class = 'cp', arrayElement(['pods', 'leases', 'events', 'nodes', 'endpointslices', 'configmaps', 'replicasets',
            'deployments', 'services', 'secrets'], 1 + h4 % 10),
        arrayElement(['pods', 'configmaps', 'secrets', 'deployments', 'services', 'jobs', 'roles', 'rolebindings',
            'clusterrolebindings', 'namespaces', 'serviceaccounts', 'ingresses'], 1 + h4 % 12)) AS resource,
    multiIf(vk = 'exec', 'exec', class = 'cp' AND verb = 'update' AND resource IN ('pods', 'nodes', 'deployments'), 'status', '') AS subresource,
    multiIf(resource IN ('deployments', 'replicasets'), 'apps', resource IN ('roles', 'rolebindings', 'clusterrolebindings'),
        'rbac.authorization.k8s.io', resource = 'leases', 'coordination.k8s.io', resource = 'endpointslices', 'discovery.k8s.io',
        resource = 'jobs', 'batch', resource = 'ingresses', 'networking.k8s.io', '') AS api_group,
    if(resource IN ('nodes', 'namespaces', 'clusterrolebindings'), '',
       if(class = 'cp' AND h5 % 3 = 0, 'kube-system', arrayElement(['shop', 'billing', 'payments', 'search', 'frontend', 'data',
           'ml', 'ci', 'monitoring', 'staging'], 1 + h5 % 10))) AS ns,
    if(verb IN ('list', 'watch', 'deletecollection'), '', concat(trimRight(resource, 's'), '-', toString(intDiv(h5, 10) % 400))) AS name,
    verb IN ('create', 'update', 'patch', 'delete', 'deletecollection') AND vk != 'exec' AS is_write,
    class != 'cp' AND (is_write OR vk = 'exec') AS decided,
    cityHash64(seed, r, 6) % 1000 AS dv,
    decided AND is_write AND cityHash64(seed, r, 8) % 100 < 3 AS dry,
    multiIf(NOT decided, '',
        resource IN ('secrets', 'roles', 'rolebindings', 'clusterrolebindings') OR vk = 'exec' OR verb = 'deletecollection',
            multiIf(dv < 600, 'allow', dv < 930, 'requireApproval', 'deny'),
        dv < 985, 'allow', 'deny') AS action,
    multiIf(action = 'requireApproval', 'approvals-for-privileged', action != '', 'gatehouse-defaults', '') AS policy,
    multiIf(action = '', '', resource = 'secrets', 'secret-changes', resource LIKE '%roles%' OR resource LIKE '%bindings', 'rbac-changes',
        vk = 'exec', 'exec-into-pods', verb = 'deletecollection', 'bulk-deletes', action = 'deny', 'protected-namespaces', 'default-allow') AS rule,
    cityHash64(seed, r, 7) % 100 AS ao,
    multiIf(action != 'requireApproval' OR dry, '', ao < 70, 'Approved', ao < 85, 'Denied', 'Expired') AS approval,
    if(approval != '', concat('apr-', lower(hex(cityHash64(seed, r, 'approval')))), '') AS approval_id,
    via_gw AND approval = 'Approved' AS held,
    via_gw AND cityHash64(seed, r, 9) % 200 = 0 AS gw_only,
    vk IN ('watch', 'exec') AS stream,
    cityHash64(seed, r, 10) % 1000 AS cv,
    multiIf(gw_only, 403, action = 'deny', 403, approval IN ('Denied', 'Expired'), 403, cv < 10, 403,
        vk = 'exec', 101,
        verb = 'create', multiIf(cv < 40, 409, cv < 55, 422, 201),
        verb IN ('update', 'patch'), if(cv < 40, 409, 200),
        verb IN ('get', 'delete'), if(cv < 40, 404, 200),
        200) AS code,
    stream AND code IN (101, 200) AS streaming,
    streaming AND via_gw AND r + greatest(intDiv(requests, 2000), 1000) >= requests AS still_open,
    code IN (401, 403) AND action NOT IN ('deny') AND approval NOT IN ('Denied', 'Expired') AND NOT gw_only AS authz_denied,
    ` + uuidExpr("a") + ` AS audit_id,
    if(held, ` + uuidExpr("h") + `, '') AS held_id,
    if(decided AND NOT gw_only, concat('admission-', ` + uuidExpr("d") + `, '-validating'), '') AS decision_id,
    concat(multiIf(api_group = '', '/api/v1', concat('/apis/', api_group, '/v1')), if(ns != '', concat('/namespaces/', ns), ''),
        '/', resource, if(name != '', concat('/', name), ''), if(subresource != '', concat('/', subresource), ''),
        multiIf(vk = 'exec', '?command=sh&command=-c&command=ls&container=main&stderr=true&stdout=true', vk = 'watch', '?watch=true',
            dry, '?dryRun=All', '')) AS uri`

// uuidExpr returns SQL for an ID shaped like the proxy's Audit-IDs (a UUID), a function of the
// seed, the request number and tag.
func uuidExpr(tag string) string {
	h := func(i int) string { return fmt.Sprintf("hex(cityHash64(seed, r, '%s%d'))", tag, i) }
	return "lower(concat(substring(" + h(1) + ", 1, 8), '-', substring(" + h(1) + ", 9, 4), '-7', substring(" + h(1) +
		", 14, 3), '-8', substring(" + h(2) + ", 2, 3), '-', substring(" + h(2) + ", 5, 12)))"
}

// requestsOf returns the number of requests that make about rows audit events.
func requestsOf(rows uint64) uint64 {
	return max(uint64(float64(rows)/eventsPerRequest), 1)
}

// auditInsert generates the audit events of requests [lo, lo+n).
var auditInsert = `INSERT INTO {db}.audit_events (audit_id, stage, event_key, request_received_at, stage_at, level, verb, request_uri,
    api_group, api_version, resource, subresource, namespace, name, object_uid, user, actor_kind, user_uid, user_groups, user_extra,
    authenticated_user, authenticated_groups, impersonated, session_id, issuer, subject, client, approval_id, admission_decision_id,
    admission_policy, admission_rule, admission_action, original_user, source_ips, user_agent, code, dry_run, status, reason, message,
    annotations, request_object, response_object, masked_fields, masked_by, truncated, origin, ingested_at)
WITH ` + requestExprs + `,
    multiIf(still_open, [('ResponseStarted', 'answered')],
        streaming, [('ResponseStarted', 'answered'), ('ResponseComplete', 'answered')],
        [('ResponseComplete', 'answered')]) AS answered,
    multiIf(gw_only, [], held, arrayConcat([('ResponseComplete', 'held')], answered), answered) AS events
SELECT
    if(ev.2 = 'held', held_id, audit_id),
    ev.1,
    cityHash64(seed, r, ev.1, ev.2),
    if(ev.2 = 'held', t, addMilliseconds(t, if(held, 40000 + cityHash64(seed, r, 'wait') % 600000, 0))),
    addMilliseconds(if(ev.2 = 'held', t, addMilliseconds(t, if(held, 40000 + cityHash64(seed, r, 'wait') % 600000, 0))),
        if(ev.1 = 'ResponseStarted', 2, if(stream, 2000 + cityHash64(seed, r, 'dur') % 900000, 3 + cityHash64(seed, r, 'lat') % 80))),
    if(is_write OR resource = 'secrets' OR vk = 'exec', 'RequestResponse', 'Metadata'),
    verb,
    uri,
    api_group, 'v1', resource, subresource, ns, name,
    if(name != '', lower(hex(cityHash64(seed, resource, ns, name))), ''),
    usr, kind, '', grps, map(),
    if(via_gw, 'system:serviceaccount:gatehouse:gatehouse-proxy', usr),
    if(via_gw, ['system:serviceaccounts', 'system:serviceaccounts:gatehouse', 'system:authenticated'], grps),
    via_gw,
    session,
    if(via_gw, 'https://idp.example.com', ''),
    if(via_gw, substring(usr, 6), ''),
    client,
    approval_id,
    if(ev.2 = 'held', concat(decision_id, '-held'), decision_id),
    if(decision_id != '', policy, ''),
    if(decision_id != '', rule, ''),
    if(decision_id != '', action, ''),
    '',
    [if(via_gw, '10.0.3.17', concat('10.0.', toString(h3 % 4), '.', toString(h3 % 250)))],
    if(via_gw, concat(client, ' via gatehouse'), if(class = 'cp', 'kube-controller-manager/v1.36.3 (linux/amd64)', 'kubectl/v1.36.3 (linux/amd64)')),
    if(ev.2 = 'held', 403, if(ev.1 = 'ResponseStarted', if(vk = 'exec', 101, 200), code)),
    dry,
    if((if(ev.2 = 'held', 403, code) BETWEEN 200 AND 299) OR code = 101, '', 'Failure'),
    multiIf(ev.2 = 'held' OR code = 403, 'Forbidden', code = 404, 'NotFound', code = 409, 'Conflict', code = 422, 'Invalid', ''),
    multiIf(ev.2 = 'held', concat('admission webhook "privileged.validate.gatehouse.dev" denied the request: held for approval ', approval_id),
        action = 'deny' AND code = 403, concat('admission webhook "privileged.validate.gatehouse.dev" denied the request: ', rule, ' forbids this'),
        code = 403, concat(resource, ' is forbidden: User "', usr, '" cannot ', verb, ' resource "', resource, '"'),
        code = 404, concat(resource, ' "', name, '" not found'), code = 409, 'the object has been modified', ''),
    mapFromArrays(
        arrayConcat(['authorization.k8s.io/decision', 'authorization.k8s.io/reason'],
            if(decision_id != '', ['privileged.validate.gatehouse.dev/decision-id', 'privileged.validate.gatehouse.dev/policy',
                'privileged.validate.gatehouse.dev/rule', 'privileged.validate.gatehouse.dev/action'], [])),
        arrayConcat([if(authz_denied, 'forbid', 'allow'), if(authz_denied, '', 'RBAC: allowed by ClusterRoleBinding')],
            if(decision_id != '', [if(ev.2 = 'held', concat(decision_id, '-held'), decision_id), policy, rule, action], []))),
    if(is_write, concat('{"kind":"', resource, '","apiVersion":"v1","metadata":{"name":"', name, '","namespace":"', ns,
        '","labels":{"app":"', ns, '","tier":"backend"}},"spec":{"replicas":', toString(h4 % 5), ',"template":{"spec":{"containers":[{"name":"main","image":"registry.example.com/', ns, '/app:', toString(h5 % 90), '"}]}}}}'), ''),
    if(code BETWEEN 200 AND 299 AND (is_write OR resource = 'secrets'), concat('{"kind":"', resource, '","apiVersion":"v1","metadata":{"name":"', name,
        '","namespace":"', ns, '","uid":"', lower(hex(cityHash64(seed, resource, ns, name))), '","resourceVersion":"', toString(r), '"}',
        if(resource = 'secrets', ',"data":{"password":"gatehouse:masked:0f3a9c12be77"}', ''), '}'), ''),
    if(resource = 'secrets' AND code = 200 AND verb = 'get', 1, 0),
    if(resource = 'secrets' AND code = 200 AND verb = 'get', map('secret-data', 1), map()),
    false,
    'webhook',
    addSeconds(t, 2)
FROM numbers({lo:UInt64}, {n:UInt64})
ARRAY JOIN events AS ev`

// requestInsert generates the gateway's records of requests [lo, lo+n): one per call through the
// gateway, and an open record for each stream.
var requestInsert = `INSERT INTO {db}.gateway_requests (id, time, source, audit_id, held_audit_id, session_id, user, actor_kind,
    user_uid, user_groups, user_extra, issuer, subject, client, source_ip, verb, api_group, api_version, resource, subresource,
    namespace, name, path, code, dry_run, latency_ns, duration_ns, bytes_in, bytes_out, masked_fields, masked_by, policy, rule,
    action, decision_message, approval_id, error, phase, recording_id, ingested_at)
WITH ` + requestExprs + `,
    if(held, held_id, audit_id) AS record_id,
    if(held, addMilliseconds(t, 40000 + cityHash64(seed, r, 'wait') % 600000), t) AS answered_at,
    arrayConcat(if(stream AND NOT gw_only, ['open'], []), if(stream AND held, ['reopen'], []), if(still_open, [], ['final'])) AS phases
SELECT
    multiIf(ph = 'open', concat(record_id, '/open'), ph = 'reopen', concat(audit_id, '/open'), record_id),
    t,
    concat('proxy/gatehouse-', toString(cityHash64(seed, usr) % 3)),
    if(ph = 'open', record_id, audit_id),
    multiIf(ph = 'open', '', held, held_id, approval != '', audit_id, ''),
    session, usr, kind, '', grps, map(),
    'https://idp.example.com', substring(usr, 6), client, concat('192.168.7.', toString(cityHash64(seed, usr) % 200)),
    verb, api_group, 'v1', resource, subresource, ns, name, '',
    if(ph != 'final', 0, code),
    dry,
    if(ph != 'final', 0, 5000000 + cityHash64(seed, r, 'lat') % 80000000),
    if(ph != 'final', 0, if(stream, 2000000000 + cityHash64(seed, r, 'dur') % 900000000000, 6000000 + cityHash64(seed, r, 'lat') % 80000000)),
    if(is_write, 350, 0),
    if(code BETWEEN 200 AND 299, 1200 + h4 % 20000, 300),
    if(resource = 'secrets' AND code = 200 AND verb = 'get', 1, 0),
    if(resource = 'secrets' AND code = 200 AND verb = 'get', map('secret-data', 1), map()),
    if(gw_only, 'gatehouse-defaults', ''), if(gw_only, 'protected-namespaces', ''), if(gw_only, 'deny', ''),
    if(gw_only, 'Agents may not change the gatehouse namespace.', ''),
    if(via_gw, approval_id, ''),
    multiIf(ph != 'final', '', gw_only, 'denied by policy gatehouse-defaults/protected-namespaces', approval = 'Denied', 'approval Denied',
        approval = 'Expired', 'still pending at the hold limit', ''),
    if(ph != 'final', 'Open', ''),
    if(vk = 'exec', record_id, ''),
    addSeconds(answered_at, 1)
FROM numbers({lo:UInt64}, {n:UInt64})
ARRAY JOIN phases AS ph
WHERE via_gw`

// decisionInsert generates the validating webhook's decisions of requests [lo, lo+n).
var decisionInsert = `INSERT INTO {db}.gateway_decisions (id, time, source, component, audit_id, admission_uid, session_id, user,
    user_groups, issuer, subject, verb, api_group, api_version, resource, subresource, namespace, name, via_gateway, dry_run, admitted,
    policy, rule, action, message, approval_id, ingested_at)
WITH ` + requestExprs + `
SELECT if(att = 'held', concat(decision_id, '-held'), decision_id), t, 'webhook/gatehouse-webhook-0', 'validating-webhook', '', lower(hex(cityHash64(seed, r, 'uid'))), session, usr,
    grps, if(via_gw, 'https://idp.example.com', ''), if(via_gw, substring(usr, 6), ''),
    if(vk = 'exec', 'connect', verb), api_group, 'v1', resource, subresource, ns, name, via_gw, dry,
    action = 'allow' OR dry OR (action = 'requireApproval' AND approval = 'Approved' AND att != 'held'),
    policy, rule, action,
    multiIf(action = 'deny', concat(rule, ' forbids this'), action = 'requireApproval', concat('Changes to ', resource, ' are reviewed by an approver.'), ''),
    approval_id, addSeconds(t, 1)
FROM numbers({lo:UInt64}, {n:UInt64})
ARRAY JOIN if(held, ['held', 'answered'], ['answered']) AS att
WHERE decision_id != ''`

// approvalInsert generates the approval records of requests [lo, lo+n).
var approvalInsert = `INSERT INTO {db}.approvals (id, time, source, approval_id, event, session_id, requester, requester_groups,
    requester_issuer, requester_subject, original_user, requester_reason, verb, api_group, api_version, resource, subresource,
    namespace, name, fingerprint, policy, rule, policy_message, approver_groups, required, actor, reason, approvers, path, expires_at,
    admission_uid, ingested_at)
WITH ` + requestExprs + `,
    arrayConcat(['Requested'], [approval], if(approval = 'Approved', ['GrantUsed'], [])) AS events
SELECT concat(approval_id, '-', lower(ev)), addSeconds(t, indexOf(events, ev) * 30), 'webhook/gatehouse-webhook-0', approval_id, ev,
    session, usr, grps, if(via_gw, 'https://idp.example.com', ''), if(via_gw, substring(usr, 6), ''), '',
    if(cityHash64(seed, r, 'why') % 3 = 0, '', concat('ticket OPS-', toString(cityHash64(seed, r, 'why') % 9000))),
    if(vk = 'exec', 'connect', verb), api_group, 'v1', resource, subresource, ns, name, lower(hex(cityHash64(seed, r, 'fp'))),
    policy, rule, concat('Changes to ', resource, ' are reviewed by an approver.'), ['gatehouse:approvers'], 1,
    if(ev IN ('Approved', 'Denied'), concat('oidc:approver-', toString(cityHash64(seed, r, 'who') % 12)), ''),
    multiIf(ev = 'Approved', 'looks right', ev = 'Denied', 'use the pipeline instead', ''),
    if(ev IN ('Approved', 'GrantUsed'), [concat('oidc:approver-', toString(cityHash64(seed, r, 'who') % 12))], []),
    if(via_gw, 'proxy', 'admission'), addHours(t, 1), if(ev = 'GrantUsed', lower(hex(cityHash64(seed, r, 'uid2'))), ''), addSeconds(t, 40)
FROM numbers({lo:UInt64}, {n:UInt64})
ARRAY JOIN events AS ev
WHERE approval_id != ''`

// sessionInsert generates the session records: Started and Ended for each session.
var sessionInsert = `INSERT INTO {db}.sessions (id, time, source, session_id, label, event, user, user_groups, issuer, subject,
    client, source_ip, started, last_activity, requests, ingested_at)
SELECT concat(s_id, '-', lower(ev)), if(ev = 'Started', s_first, s_last), 'proxy/gatehouse-0', s_id,
    if(s_n % 3 = 0, concat('task-', substring(s_id, 1, 6)), ''), ev, s_user, s_groups, 'https://idp.example.com', substring(s_user, 6),
    s_client, '192.168.7.10', s_first, s_last, s_n, addSeconds(s_last, 1)
FROM
(
    WITH ` + requestExprs + `
    SELECT session AS s_id, any(usr) AS s_user, any(grps) AS s_groups, any(client) AS s_client, min(t) AS s_first, max(t) AS s_last,
        count() AS s_n
    FROM numbers({lo:UInt64}, {n:UInt64})
    WHERE via_gw
    GROUP BY session
)
ARRAY JOIN ['Started', 'Ended'] AS ev`

// recordingInsert generates the recordings of the execs through the gateway: two chunks each.
var recordingInsert = `INSERT INTO {db}.session_recordings (recording_id, seq, session_id, audit_id, start, time, source, final,
    format, subresource, namespace, pod, container, command, user, data, prev_hash, hash, ingested_at)
WITH ` + requestExprs + `
SELECT if(held, held_id, audit_id), seq, session, audit_id, addSeconds(t, seq), addSeconds(t, seq + 1), 'proxy/gatehouse-0', seq = 1,
    'asciicast-v3', 'exec', ns, name, 'main', ['sh', '-c', 'ls'], usr,
    if(seq = 0, '{"version":3,"term":{"cols":80,"rows":24}}\n[0.1,"o","app.log\\n"]\n', '[0.2,"x","0"]\n'),
    if(seq = 0, '', lower(hex(cityHash64(seed, r, 'chunk', 0)))), lower(hex(cityHash64(seed, r, 'chunk', seq))), addSeconds(t, seq + 2)
FROM numbers({lo:UInt64}, {n:UInt64})
ARRAY JOIN [0, 1] AS seq
WHERE via_gw AND vk = 'exec' AND code = 101 AND NOT still_open`

// Generate fills the database with generated rows and returns the tables' row counts.
func Generate(ctx context.Context, conn driver.Conn, o Options) (Stats, error) {
	if o.Chunk == 0 {
		o.Chunk = 500_000
	}
	if o.Days <= 0 {
		o.Days = 30
	}
	if o.End.IsZero() {
		return nil, fmt.Errorf("gentrail: an end time is required")
	}
	requests := requestsOf(o.Rows)
	span := time.Duration(o.Days) * 24 * time.Hour
	start := o.End.Add(-span).UTC()
	params := func(lo, n uint64) context.Context {
		return clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
			"seed":     fmt.Sprint(o.Seed),
			"requests": fmt.Sprint(requests),
			"start":    start.Format("2006-01-02 15:04:05.000000"),
			"span_us":  fmt.Sprint(uint64(span / time.Microsecond)),
			"lo":       fmt.Sprint(lo),
			"n":        fmt.Sprint(n),
		}), clickhouse.WithSettings(clickhouse.Settings{
			// Each INSERT … SELECT writes one part per partition it touches; keep them large.
			"max_insert_block_size":           1_000_000,
			"min_insert_block_size_rows":      1_000_000,
			"max_partitions_per_insert_block": 1000,
		}))
	}
	steps := []struct{ table, query string }{
		{"audit_events", auditInsert},
		{"gateway_requests", requestInsert},
		{"gateway_decisions", decisionInsert},
		{"approvals", approvalInsert},
		{"session_recordings", recordingInsert},
	}
	for _, s := range steps {
		q := strings.ReplaceAll(s.query, "{db}", o.Database)
		for lo := uint64(0); lo < requests; lo += o.Chunk {
			n := min(o.Chunk, requests-lo)
			if err := conn.Exec(params(lo, n), q); err != nil {
				return nil, fmt.Errorf("gentrail: generate %s: %w", s.table, err)
			}
			if o.Progress != nil {
				o.Progress(s.table, lo+n, requests)
			}
		}
	}
	// Sessions span chunks: generate them from all requests at once.
	if err := conn.Exec(params(0, requests), strings.ReplaceAll(sessionInsert, "{db}", o.Database)); err != nil {
		return nil, fmt.Errorf("gentrail: generate sessions: %w", err)
	}
	if o.Progress != nil {
		o.Progress("sessions", requests, requests)
	}
	stats := Stats{}
	for _, table := range []string{"audit_events", "gateway_requests", "gateway_decisions", "approvals", "sessions", "session_recordings"} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+o.Database+"."+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("gentrail: count %s: %w", table, err)
		}
		stats[table] = n
	}
	return stats, nil
}
