-- Streams still open: watches, followed logs, exec, attach and port-forward the gateway started and
-- has not seen end (still running, or cut off when their proxy stopped).
-- default since=24h
SELECT started, record_id, audit_id, session_id, source, user, verb, resource, subresource, namespace, name, recording_id
FROM gatehouse.open_streams_for(since = {since:DateTime64(6)})
ORDER BY started, record_id
