-- Conversations of a (tenant, day) still pending because the monthly budget was reached.
SELECT COUNT(*) FROM pending_conversations p
JOIN analysis_failures f
  ON f.tenant_id = p.tenant_id AND f.conversation_id = p.conversation_id
 AND f.content_hash = p.content_hash AND f.error_kind = 'budget_exhausted'
WHERE p.tenant_id = :tenant_id AND p.day = :day
