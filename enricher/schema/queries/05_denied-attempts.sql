-- Denied attempts: refused by the gateway's policy, by admission (a policy, or an approval that
-- was denied or not given in time) or by kube-apiserver's authorization. The first attempt of a
-- call that was held and then approved is not a refusal (outcome held) and is not here.
-- default since=24h
SELECT time, user, actor_kind, route, session_id, verb, resource, subresource, namespace, name, code,
       multiIf(route = 'gateway-only', 'gateway',
               decision_action = 'deny', 'admission',
               decision_action = 'requireApproval', 'approval',
               'authorization') AS denied_by,
       decision_policy, decision_rule, approval_id, approval_state,
       multiIf(decision_action = 'requireApproval' AND gateway_error != '', gateway_error,
               decision_message != '', decision_message,
               message) AS reason
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE stage IN ('ResponseComplete', '') AND outcome = 'denied'
  AND actor_kind != 'control-plane'
ORDER BY time, audit_id
