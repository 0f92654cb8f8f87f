-- Conversations of a (tenant, day) that have an answer of the given analyzer for their current content.
SELECT c.conversation_id
FROM chatwoot_conversations c
JOIN conversation_analyses a
  ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
 AND a.analyzer = :analyzer AND a.model = :model AND a.prompt_version = :prompt_version
WHERE c.tenant_id = :tenant_id AND c.day = :day
