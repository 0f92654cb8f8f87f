SELECT conversation_id, day FROM chatwoot_conversations
WHERE tenant_id = :tenant_id AND conversation_id IN :conversation_ids
