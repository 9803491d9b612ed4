-- Activity per identity: for people, agents and automation, requests, sessions, changes that
-- took effect, dry runs, refusals, Secret accesses, and whether it ever bypassed the gateway.
-- default since=24h
SELECT user, actor_kind, issuer, subject,
       uniqExact(audit_id) AS requests,
       uniqExactIf(session_id, session_id != '') AS sessions,
       uniqExactIf(audit_id, changed) AS changes,
       uniqExactIf(audit_id, outcome = 'dry-run') AS dry_runs,
       uniqExactIf(audit_id, outcome = 'denied' AND stage IN ('ResponseComplete', '')) AS denied,
       uniqExactIf(audit_id, resource = 'secrets') AS secret_accesses,
       CAST(countIf(route = 'bypass') > 0 AS Bool) AS bypassed_gateway,
       min(time) AS first_seen, max(time) AS last_seen
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE actor_kind != 'control-plane' AND outcome != 'held'
GROUP BY user, actor_kind, issuer, subject
ORDER BY requests DESC, user
