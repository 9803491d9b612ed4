-- Gateway traffic without a gateway record: requests that carry the gateway's session extras but
-- have no gateway record after the grace period: the gateway forwarded something it did not
-- record. Should be empty.
-- default since=24h
SELECT time, audit_id, user, session_id, verb, resource, subresource, namespace, name, code
FROM gatehouse.trail_for(since = {since:DateTime64(6)}, session_id = '', audit_id = '')
WHERE route = 'bypass' AND gateway_extras
ORDER BY time, audit_id
