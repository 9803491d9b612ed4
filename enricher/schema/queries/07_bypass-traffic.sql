-- Traffic that bypassed the gateway: requests that reached kube-apiserver without it, by
-- identity, without the control plane's own components. gateway_extras = true marks requests
-- that carried the gateway's session but have no gateway record.
-- default since=24h
SELECT user, actor_kind, authenticated_user, gateway_extras, verb, resource, namespace,
       uniqExact(audit_id) AS requests, min(time) AS first_seen, max(time) AS last_seen,
       groupUniqArray(3)(user_agent) AS user_agents
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE route = 'bypass' AND actor_kind != 'control-plane'
GROUP BY user, actor_kind, authenticated_user, gateway_extras, verb, resource, namespace
ORDER BY requests DESC, user, verb, resource, namespace
