-- Dead letters: rows ClickHouse rejected for good (a constraint, a value its column cannot hold),
-- stored with the error instead of blocking their stream. Should be empty; each row is kept whole,
-- as JSON, for inspection and re-insertion.
-- default since=24h
SELECT target_table, count() AS rows, min(time) AS first, max(time) AS last,
       any(error) AS example_error, any(record_key) AS example_record
FROM gatehouse.dead_letter_log
WHERE time >= {since:DateTime64(6)}
GROUP BY target_table
ORDER BY target_table
