-- The stored answers of the conversations (in a day range) that both analyzers answered for their
-- current content: only these are compared, so a regex tenant without a sample reads nothing.
SELECT c.conversation_id, c.day, c.display_id, c.content_hash,
       a.analyzer, a.model, a.prompt_version, a.is_lead, a.visita_agendada, a.probabilidade_conversao,
       a.nome_mapeado_bot, a.analise_ia, a.prompt_tokens, a.cached_tokens, a.completion_tokens, a.analyzed_at
FROM chatwoot_conversations c
JOIN conversation_analyses a
  ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
WHERE c.tenant_id = :tenant_id AND c.day >= :first_day AND c.day <= :last_day
  AND EXISTS (SELECT 1 FROM conversation_analyses r
              WHERE r.tenant_id = c.tenant_id AND r.conversation_id = c.conversation_id
                AND r.content_hash = c.content_hash AND r.analyzer = 'regex')
  AND EXISTS (SELECT 1 FROM conversation_analyses o
              WHERE o.tenant_id = c.tenant_id AND o.conversation_id = c.conversation_id
                AND o.content_hash = c.content_hash AND o.analyzer = 'openai')
ORDER BY c.conversation_id
