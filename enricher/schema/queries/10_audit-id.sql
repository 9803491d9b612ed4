-- Everything about one Audit-ID: clients see the Audit-ID in the Audit-Id response header and in
-- error messages; this is where a support case starts.
SELECT * EXCEPT (request_object, response_object)
FROM gatehouse.trail_for(since = '1970-01-01 00:00:00', session_id = '', audit_id = {audit_id:String})
ORDER BY stage_time, stage
