-- A tenant's extracted conversations of a day range with no stored answer of the given analyzer
-- (model and prompt version) for their current content: what `allpfit-etl reanalyze` would send.
SELECT c.conversation_id, c.content_hash, c.message_compiled, c.contact_name
FROM chatwoot_conversations c
WHERE c.tenant_id = :tenant_id AND c.day >= :first_day AND c.day <= :last_day
  AND NOT EXISTS (
      SELECT 1 FROM conversation_analyses a
      WHERE a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
        AND a.analyzer = :analyzer AND a.model = :model AND a.prompt_version = :prompt_version)
ORDER BY c.day, c.conversation_id
