-- A session's timeline: everything one agent session did, in order, including what the gateway
-- refused, what admission held and what is still open.
SELECT time, stage, route, attempt, outcome, verb, resource, subresource, namespace, name, code,
       decision_action, decision_policy, decision_rule, approval_id, approval_state, audit_id
FROM gatehouse.trail_for(since = '1970-01-01 00:00:00', session_id = {session_id:String}, audit_id = '')
ORDER BY time, stage_time, audit_id
