-- Exec, attach and port-forward sessions: who ran which command in which pod, when, for how long,
-- under which approval, and how it ended (open: still running, or cut off; denied: refused by the
-- gateway or admission). The command comes from the request URI (masked where it carried a
-- secret).
-- default since=24h
SELECT audit_id, user, session_id, route, namespace, name AS pod, subresource,
       arrayStringConcat(arrayMap(p -> decodeURLFormComponent(substring(p, 9)),
           arrayFilter(p -> startsWith(p, 'command='), extractURLParameters(any(request_uri)))), ' ') AS command,
       min(time) AS requested,
       maxIfOrNull(stage_time, stage = 'ResponseComplete') AS ended,
       argMax(outcome, stage IN ('ResponseComplete', '')) AS final_outcome,
       max(code) AS code, any(approval_id) AS approval_id, any(approvers) AS approvers, any(recording_id) AS recording_id
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE subresource IN ('exec', 'attach', 'portforward') AND outcome != 'held'
GROUP BY audit_id, user, session_id, route, namespace, pod, subresource
ORDER BY requested, audit_id
