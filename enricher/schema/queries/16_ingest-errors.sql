-- Ingestion health: the messages the enricher could not decode (they stay in their JetStream stream,
-- by sequence, until it expires). Should be empty.
-- default since=24h
SELECT stream, count() AS messages, sum(bytes) AS bytes, min(time) AS first, max(time) AS last,
       any(error) AS example
FROM gatehouse.ingest_error_log
WHERE time >= {since:DateTime64(6)}
GROUP BY stream
ORDER BY stream
