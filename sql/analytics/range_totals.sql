-- What a range of days of the given tenants holds now: conversations extracted and analyzed,
-- leads, visits, and the OpenAI spend on those conversations to date (every run).
SELECT
    (SELECT COUNT(*) FROM chatwoot_conversations c
      WHERE c.tenant_id IN :tenant_ids AND c.day BETWEEN :first AND :last) AS conversations,
    (SELECT COUNT(*) FROM conversations_analytics a
      WHERE a.tenant_id IN :tenant_ids AND a.day BETWEEN :first AND :last) AS analyzed,
    (SELECT COALESCE(SUM(CASE WHEN a.is_lead THEN 1 ELSE 0 END), 0) FROM conversations_analytics a
      WHERE a.tenant_id IN :tenant_ids AND a.day BETWEEN :first AND :last) AS leads,
    (SELECT COALESCE(SUM(CASE WHEN a.visita_agendada THEN 1 ELSE 0 END), 0) FROM conversations_analytics a
      WHERE a.tenant_id IN :tenant_ids AND a.day BETWEEN :first AND :last) AS visits,
    (SELECT COALESCE(SUM(u.cost_usd), 0) FROM llm_usage u
       JOIN chatwoot_conversations c ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id
      WHERE c.tenant_id IN :tenant_ids AND c.day BETWEEN :first AND :last) AS cost_usd,
    (SELECT COALESCE(SUM(u.cost_brl), 0) FROM llm_usage u
       JOIN chatwoot_conversations c ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id
      WHERE c.tenant_id IN :tenant_ids AND c.day BETWEEN :first AND :last) AS cost_brl
