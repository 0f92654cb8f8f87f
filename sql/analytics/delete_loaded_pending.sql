-- Pending rows whose current analysis is now loaded are no longer pending: the tenant's own answer,
-- or for a provisional row its provisional answer (the final one is due when the conversation settles).
DELETE FROM pending_conversations
WHERE tenant_id = :tenant_id AND day = :day
  AND EXISTS (
      SELECT 1 FROM conversations_analytics a
      WHERE a.tenant_id = pending_conversations.tenant_id
        AND a.conversation_id = pending_conversations.conversation_id
        AND a.content_hash = pending_conversations.content_hash
        AND ((a.analyzer = :analyzer AND a.model = :model AND a.prompt_version = :prompt_version)
             OR (pending_conversations.provisional AND a.answer_kind = 'provisional'))
  )
