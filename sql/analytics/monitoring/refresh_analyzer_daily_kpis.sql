-- Per day and analyzer, over the tenant's current answers (for each conversation and analyzer the
-- newest, when a model or prompt change left several): conversations, leads, visits scheduled,
-- high probability (4–5). Summed here: a backfill's days hold hundreds of thousands of answers.
INSERT INTO analyzer_daily_kpis (
    tenant_id, day, analyzer, conversations, leads, lead_rate, visits_scheduled, high_probability,
    high_probability_share, updated_at
)
SELECT :tenant_id, day, analyzer, COUNT(*), SUM(lead), 1.0 * SUM(lead) / COUNT(*), SUM(visit), SUM(high),
       1.0 * SUM(high) / COUNT(*), :updated_at
FROM (
    SELECT c.day, a.analyzer,
           CASE WHEN a.is_lead THEN 1 ELSE 0 END AS lead,
           CASE WHEN a.visita_agendada THEN 1 ELSE 0 END AS visit,
           CASE WHEN a.probabilidade_conversao >= 4 THEN 1 ELSE 0 END AS high,
           ROW_NUMBER() OVER (PARTITION BY a.conversation_id, a.analyzer
                              ORDER BY a.analyzed_at DESC, a.model DESC, a.prompt_version DESC) AS newest
    FROM chatwoot_conversations c
    JOIN conversation_analyses a
      ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id AND a.content_hash = c.content_hash
    WHERE c.tenant_id = :tenant_id AND c.day >= :first_day AND c.day <= :last_day
) answers
WHERE newest = 1
GROUP BY day, analyzer
