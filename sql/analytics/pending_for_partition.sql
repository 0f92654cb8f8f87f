-- The partition's conversations due for the tenant's own analysis (provisional ones get regex).
SELECT conversation_id FROM pending_conversations
WHERE tenant_id = :tenant_id AND day = :day AND NOT provisional
ORDER BY conversation_id
