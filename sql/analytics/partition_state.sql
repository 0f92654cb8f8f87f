-- What one (tenant, day) partition of conversations_analytics holds now.
SELECT
    COUNT(*) AS conversations,
    COALESCE(SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), 0) AS leads,
    COALESCE(SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END), 0) AS visits,
    COALESCE(SUM(CASE WHEN probabilidade_conversao >= 4 THEN 1 ELSE 0 END), 0) AS high_probability,
    COALESCE(SUM(CASE WHEN nome_mapeado_bot IS NOT NULL AND nome_mapeado_bot <> '' THEN 1 ELSE 0 END), 0) AS named,
    COALESCE(SUM(CASE WHEN answer_kind = 'provisional' THEN 1 ELSE 0 END), 0) AS provisional
FROM conversations_analytics
WHERE tenant_id = :tenant_id AND day = :day
