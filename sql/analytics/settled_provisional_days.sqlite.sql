-- The activity sensor's settle check: per day, a tenant's provisional answers whose conversation's last
-- activity is after the last look and at or before now - settle_minutes (quiet long enough to be settled).
-- SQLite keeps timestamps as text ('2025-11-20 12:00:00+00:00', with or without fractions): julianday()
-- compares them as instants whatever their spelling.
SELECT day, MAX(last_activity_at) AS last_activity_at, COUNT(*) AS conversations
FROM conversations_analytics
WHERE tenant_id = :tenant_id
  AND answer_kind = 'provisional'
  AND julianday(last_activity_at) > julianday(:after)
  AND julianday(last_activity_at) <= julianday(:until)
GROUP BY day
ORDER BY day
