-- Every stored answer for the current content of a tenant's labelled conversations, counted per
-- day, analyzer (model, prompt version), answer and outcome. paired: the other analyzer answered
-- the same content too, so both can be scored on the same conversations.
SELECT day, analyzer, model, prompt_version, paired, is_lead, visita_agendada, probabilidade_conversao, outcome,
       COUNT(*) AS n
FROM (
    SELECT
        c.day, a.analyzer, a.model, a.prompt_version,
        CASE WHEN EXISTS (
            SELECT 1 FROM conversation_analyses o
            WHERE o.tenant_id = a.tenant_id AND o.conversation_id = a.conversation_id
              AND o.content_hash = a.content_hash AND o.analyzer <> a.analyzer
        ) THEN 1 ELSE 0 END AS paired,
        a.is_lead, a.visita_agendada, a.probabilidade_conversao, c.outcome
    FROM chatwoot_conversations c
    JOIN conversation_analyses a
      ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
    WHERE c.tenant_id = :tenant_id AND c.outcome IS NOT NULL
) answers
GROUP BY day, analyzer, model, prompt_version, paired, is_lead, visita_agendada, probabilidade_conversao, outcome
ORDER BY day, analyzer, model, prompt_version
