-- What a range of days of the given tenants holds now: conversations extracted and analyzed,
-- leads, visits, and the OpenAI spend on those conversations to date (every run).
WITH analyzed AS (
    SELECT COUNT(*) AS analyzed,
           COALESCE(SUM(CASE WHEN a.is_lead THEN 1 ELSE 0 END), 0) AS leads,
           COALESCE(SUM(CASE WHEN a.visita_agendada THEN 1 ELSE 0 END), 0) AS visits
    FROM conversations_analytics a
    WHERE a.tenant_id IN :tenant_ids AND a.day BETWEEN :first AND :last
), spend AS (
    SELECT COALESCE(SUM(u.cost_usd), 0) AS cost_usd, COALESCE(SUM(u.cost_brl), 0) AS cost_brl,
           COALESCE(SUM(CASE WHEN NOT u.priced AND (u.prompt_tokens > 0 OR u.completion_tokens > 0)
                             THEN 1 ELSE 0 END), 0) AS unpriced_calls
    FROM llm_usage u
    JOIN chatwoot_conversations c ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id
    WHERE c.tenant_id IN :tenant_ids AND c.day BETWEEN :first AND :last
)
SELECT
    (SELECT COUNT(*) FROM chatwoot_conversations c
      WHERE c.tenant_id IN :tenant_ids AND c.day BETWEEN :first AND :last) AS conversations,
    analyzed.analyzed, analyzed.leads, analyzed.visits, spend.cost_usd, spend.cost_brl,
    spend.unpriced_calls
FROM analyzed, spend
