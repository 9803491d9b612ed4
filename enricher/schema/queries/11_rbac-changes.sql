-- RBAC changes: the ones that took effect, the control plane's own left out.
-- default since=24h
SELECT time, user, actor_kind, route, session_id, verb, resource, namespace, name, code, approval_id, approvers, audit_id
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE api_group = 'rbac.authorization.k8s.io' AND changed AND actor_kind != 'control-plane'
  AND stage IN ('ResponseComplete', '')
ORDER BY time, audit_id
