-- The first characters of some conversations' transcripts (the disagreement examples).
SELECT conversation_id, SUBSTR(message_compiled, 1, :length) AS transcript_start
FROM chatwoot_conversations
WHERE tenant_id = :tenant_id AND conversation_id IN :conversation_ids
