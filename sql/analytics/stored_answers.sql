-- Answers already stored for these conversations by this analyser: reused, never paid again.
SELECT conversation_id, content_hash, is_lead, visita_agendada, probabilidade_conversao,
       nome_mapeado_bot, analise_ia
FROM conversation_analyses
WHERE tenant_id = :tenant_id
  AND analyzer = :analyzer AND model = :model AND prompt_version = :prompt_version
  AND conversation_id IN :conversation_ids
