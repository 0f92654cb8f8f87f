-- Extracted conversations of a (tenant, day) with neither a current loaded analysis nor a
-- recorded failure for their current content, and not waiting in an open OpenAI batch.
SELECT c.conversation_id
FROM chatwoot_conversations c
WHERE c.tenant_id = :tenant_id AND c.day = :day
  AND NOT EXISTS (
      SELECT 1 FROM conversations_analytics a
      WHERE a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id
        AND a.content_hash = c.content_hash)
  AND NOT EXISTS (
      SELECT 1 FROM analysis_failures f
      WHERE f.tenant_id = c.tenant_id AND f.conversation_id = c.conversation_id
        AND f.content_hash = c.content_hash)
  AND NOT EXISTS (
      SELECT 1 FROM llm_batch_requests r
      WHERE r.tenant_id = c.tenant_id AND r.conversation_id = c.conversation_id
        AND r.content_hash = c.content_hash AND r.state = 'open')
ORDER BY c.conversation_id
