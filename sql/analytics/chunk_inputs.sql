-- Transcripts of a chunk's conversations, with the hash that was pending.
SELECT c.conversation_id, c.content_hash, c.message_compiled, c.contact_name
FROM chatwoot_conversations c
JOIN pending_conversations p
  ON p.tenant_id = c.tenant_id AND p.conversation_id = c.conversation_id AND p.content_hash = c.content_hash
WHERE c.tenant_id = :tenant_id AND c.conversation_id IN :conversation_ids
ORDER BY c.conversation_id
