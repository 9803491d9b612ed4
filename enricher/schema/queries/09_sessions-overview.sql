-- Sessions overview: one row per gateway session.
-- default since=24h
SELECT t.session_id AS session_id, any(t.user) AS user, any(t.client) AS client,
       any(s.label) AS label, min(t.time) AS first_request, max(t.time) AS last_request,
       any(s.ended) AS ended,
       uniqExactIf(t.audit_id, t.outcome != 'held') AS requests,
       uniqExactIf(t.audit_id, t.changed) AS changes,
       uniqExactIf(t.audit_id, t.outcome = 'denied' AND t.stage IN ('ResponseComplete', '')) AS denied,
       uniqExactIf(t.audit_id, t.resource = 'secrets' AND t.outcome != 'held') AS secret_accesses,
       uniqExactIf(t.audit_id, t.subresource = 'exec' AND t.outcome != 'held') AS execs,
       arraySort(groupUniqArrayIf(t.approval_id, t.approval_id != '')) AS approvals
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '') AS t
LEFT JOIN gatehouse.session_summary_for(since = {since:DateTime64(6)}) AS s ON s.session_id = t.session_id
WHERE t.session_id != ''
GROUP BY t.session_id
ORDER BY first_request, session_id
