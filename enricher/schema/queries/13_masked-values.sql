-- What was masked, where: counts only; the values themselves were never stored.
-- default since=24h
SELECT resource, namespace, name, user, route,
       sum(masked_fields) AS masked_values, sumMap(masked_by) AS by_rule, count() AS events
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE masked_fields > 0
GROUP BY resource, namespace, name, user, route
ORDER BY masked_values DESC, resource, namespace, name, user
