-- The partition's unsettled conversations of an OpenAI tenant: their free regex answer is due now.
SELECT conversation_id FROM pending_conversations
WHERE tenant_id = :tenant_id AND day = :day AND provisional
ORDER BY conversation_id
