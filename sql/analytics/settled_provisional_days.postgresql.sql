-- The activity sensor's settle check: per day, a tenant's provisional answers whose conversation's last
-- activity is after the last look and at or before now - settle_minutes (quiet long enough to be settled).
-- Reads the partial index conversations_analytics_provisional (tenant_id, last_activity_at).
SELECT day, MAX(last_activity_at) AS last_activity_at, COUNT(*) AS conversations
FROM conversations_analytics
WHERE tenant_id = :tenant_id
  AND answer_kind = 'provisional'
  AND last_activity_at > :after
  AND last_activity_at <= :until
GROUP BY day
ORDER BY day
