-- Extracted conversations of a tenant in a day range (the month's volume).
SELECT COUNT(*) AS conversations FROM chatwoot_conversations
WHERE tenant_id = :tenant_id AND day >= :first_day AND day <= :last_day
