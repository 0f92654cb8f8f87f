-- A tenant's conversations answered, for their current content, both by its current prompt and by
-- a candidate prompt (same analyzer and model): what `allpfit-etl compare SLUG --candidate` compares.
SELECT cur.conversation_id, c.day, c.outcome,
       cur.is_lead AS current_is_lead, cand.is_lead AS candidate_is_lead,
       cur.visita_agendada AS current_visita_agendada, cand.visita_agendada AS candidate_visita_agendada,
       cur.probabilidade_conversao AS current_probabilidade_conversao,
       cand.probabilidade_conversao AS candidate_probabilidade_conversao,
       cur.nome_mapeado_bot AS current_nome_mapeado_bot, cand.nome_mapeado_bot AS candidate_nome_mapeado_bot,
       cur.prompt_tokens AS current_prompt_tokens, cand.prompt_tokens AS candidate_prompt_tokens,
       cur.cached_tokens AS current_cached_tokens, cand.cached_tokens AS candidate_cached_tokens,
       cur.cost_usd AS current_cost_usd, cand.cost_usd AS candidate_cost_usd
FROM conversation_analyses cur
JOIN chatwoot_conversations c
  ON c.tenant_id = cur.tenant_id AND c.conversation_id = cur.conversation_id AND c.content_hash = cur.content_hash
JOIN conversation_analyses cand
  ON cand.tenant_id = cur.tenant_id AND cand.conversation_id = cur.conversation_id
 AND cand.content_hash = cur.content_hash AND cand.analyzer = cur.analyzer AND cand.model = cur.model
 AND cand.prompt_version = :candidate_prompt_version
WHERE cur.tenant_id = :tenant_id AND cur.analyzer = :analyzer AND cur.model = :model
  AND cur.prompt_version = :prompt_version
ORDER BY c.day, cur.conversation_id
