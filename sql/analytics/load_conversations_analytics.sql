-- Upsert the analysed pending conversations of a (tenant, day) into the dashboards' table: the answer
-- of the tenant's own analyzer (final) or, for a conversation still going on (p.provisional), the
-- regex answer standing in for it (provisional) unless the final answer for that content exists.
INSERT INTO conversations_analytics (
    tenant_id, conversation_id, day, display_id, inbox_id, inbox_name, status,
    conversation_created_at, conversation_updated_at, last_activity_at, contact_name,
    contact_messages_count, message_compiled, content_hash, is_lead, visita_agendada,
    probabilidade_conversao, nome_mapeado_bot, analise_ia, analyzer, model, prompt_version,
    analyzed_at, answer_kind, labels, outcome, loaded_at
)
SELECT
    c.tenant_id, c.conversation_id, c.day, c.display_id, c.inbox_id, c.inbox_name, c.status,
    c.conversation_created_at, c.conversation_updated_at, c.last_activity_at, c.contact_name,
    c.contact_messages_count, c.message_compiled, c.content_hash, a.is_lead, a.visita_agendada,
    a.probabilidade_conversao, a.nome_mapeado_bot, a.analise_ia, a.analyzer, a.model, a.prompt_version,
    a.analyzed_at,
    CASE WHEN a.analyzer = :analyzer AND a.model = :model AND a.prompt_version = :prompt_version
         THEN 'final' ELSE 'provisional' END,
    c.labels, c.outcome,
    :loaded_at
FROM pending_conversations p
JOIN chatwoot_conversations c
  ON c.tenant_id = p.tenant_id AND c.conversation_id = p.conversation_id AND c.content_hash = p.content_hash
JOIN conversation_analyses a
  ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
 AND ((a.analyzer = :analyzer AND a.model = :model AND a.prompt_version = :prompt_version)
      OR (p.provisional
          AND a.analyzer = :regex_analyzer AND a.model = :regex_model AND a.prompt_version = :regex_prompt_version
          AND NOT EXISTS (
              SELECT 1 FROM conversation_analyses f
              WHERE f.tenant_id = a.tenant_id AND f.conversation_id = a.conversation_id
                AND f.content_hash = a.content_hash
                AND f.analyzer = :analyzer AND f.model = :model AND f.prompt_version = :prompt_version)))
WHERE p.tenant_id = :tenant_id AND p.day = :day
ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET
    day                     = excluded.day,
    display_id              = excluded.display_id,
    inbox_id                = excluded.inbox_id,
    inbox_name              = excluded.inbox_name,
    status                  = excluded.status,
    conversation_created_at = excluded.conversation_created_at,
    conversation_updated_at = excluded.conversation_updated_at,
    last_activity_at        = excluded.last_activity_at,
    contact_name            = excluded.contact_name,
    contact_messages_count  = excluded.contact_messages_count,
    message_compiled        = excluded.message_compiled,
    content_hash            = excluded.content_hash,
    is_lead                 = excluded.is_lead,
    visita_agendada         = excluded.visita_agendada,
    probabilidade_conversao = excluded.probabilidade_conversao,
    nome_mapeado_bot        = excluded.nome_mapeado_bot,
    analise_ia              = excluded.analise_ia,
    analyzer                = excluded.analyzer,
    model                   = excluded.model,
    prompt_version          = excluded.prompt_version,
    analyzed_at             = excluded.analyzed_at,
    answer_kind             = excluded.answer_kind,
    labels                  = excluded.labels,
    outcome                 = excluded.outcome,
    loaded_at               = excluded.loaded_at
