-- Who read which Secrets: the successful reads, the control plane's own left out.
-- default since=24h
SELECT user, actor_kind, route, session_id, namespace, name, verb,
       uniqExact(audit_id) AS reads,
       min(time) AS first_read, max(time) AS last_read,
       groupUniqArray(5)(arrayStringConcat(source_ips, ',')) AS from_ips
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE resource = 'secrets' AND verb IN ('get', 'list', 'watch') AND actor_kind != 'control-plane'
  AND stage IN ('ResponseStarted', 'ResponseComplete', '') AND outcome IN ('succeeded', 'started', 'open')
GROUP BY user, actor_kind, route, session_id, namespace, name, verb
ORDER BY reads DESC, user, namespace, name
