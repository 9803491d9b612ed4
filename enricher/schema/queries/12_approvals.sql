-- Approvals and what was done under them: who asked (and who they really were when they
-- impersonated), why, which rule required it, who approved or denied it and what they said, and
-- the calls that ran under it.
-- default since=24h
SELECT a.approval_id AS approval_id, a.state AS state, a.requester AS requester, a.original_user AS original_user,
       a.requester_reason AS requester_reason, a.rule AS rule, a.policy_message AS why_needed,
       a.approvers AS approvers, a.reasons AS reasons, a.denied_by AS denied_by, a.path AS path,
       a.requested_at AS requested_at, a.decided_at AS decided_at,
       uniqExactIf(t.audit_id, t.changed OR t.outcome = 'succeeded') AS operations,
       arraySort(groupUniqArrayIf(concat(t.verb, ' ', t.resource, if(t.subresource != '', concat('/', t.subresource), ''), ' ',
           t.namespace, '/', t.name), t.changed OR t.outcome = 'succeeded')) AS done
FROM gatehouse.approval_summary_for(since = {since:DateTime64(6)}) AS a
LEFT JOIN
(
    SELECT approval_id, audit_id, verb, resource, subresource, namespace, name, changed, outcome
    FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
    WHERE approval_id != '' AND stage IN ('ResponseComplete', '')
) AS t ON t.approval_id = a.approval_id
GROUP BY approval_id, state, requester, original_user, requester_reason, rule, why_needed, approvers, reasons, denied_by, path,
         requested_at, decided_at
ORDER BY requested_at, approval_id
