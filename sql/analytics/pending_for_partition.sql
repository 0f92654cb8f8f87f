SELECT conversation_id FROM pending_conversations
WHERE tenant_id = :tenant_id AND day = :day
ORDER BY conversation_id
