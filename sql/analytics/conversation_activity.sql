-- What says whether each of these extracted conversations has settled.
SELECT conversation_id, last_activity_at, status
FROM chatwoot_conversations
WHERE tenant_id = :tenant_id AND conversation_id IN :conversation_ids
