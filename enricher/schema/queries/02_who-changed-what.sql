-- Who changed what: every change that took effect, by people, agents and automation (not the
-- control plane), with what decided it and who approved it. Dry runs, refusals and held
-- attempts changed nothing and are not here. namespace '' means every namespace.
-- default since=24h
-- default namespace=
SELECT time, actor_kind, user, route, session_id, verb, resource, subresource, namespace, name, code,
       decision_policy, decision_rule, approval_id, approvers, audit_id
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE changed AND actor_kind != 'control-plane' AND stage IN ('ResponseComplete', '')
  AND ({namespace:String} = '' OR namespace = {namespace:String})
ORDER BY time, audit_id
