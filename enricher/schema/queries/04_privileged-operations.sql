-- Privileged operations, with approvers and reasons: exec, attach and port-forward, Secret and
-- RBAC writes, deletions, and anything done under an approval, by people, agents and automation,
-- whatever their outcome.
-- default since=24h
SELECT time, user, session_id, route, outcome, verb, resource, subresource, namespace, name, code,
       approval_id, approval_state, approvers, approval_reasons, approval_requester_reason, approval_policy_message,
       approval_requester, approval_original_user, decision_policy, decision_rule
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE actor_kind != 'control-plane'
  AND (stage IN ('ResponseComplete', '') OR outcome = 'open')
  AND (approval_id != ''
       OR subresource IN ('exec', 'attach', 'portforward')
       OR (resource = 'secrets' AND verb IN ('create', 'update', 'patch', 'delete', 'deletecollection'))
       OR (api_group = 'rbac.authorization.k8s.io' AND verb IN ('create', 'update', 'patch', 'delete', 'deletecollection'))
       OR (verb IN ('delete', 'deletecollection') AND resource != 'events'))
ORDER BY time, audit_id
