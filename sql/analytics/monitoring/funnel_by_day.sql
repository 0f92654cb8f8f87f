-- A tenant's funnel per day from the dashboards' table: the loaded analysis (leads, visits
-- scheduled) and the outcome the labels give (visited counts the converted too).
SELECT
    day,
    COUNT(*) AS conversations,
    COALESCE(SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), 0) AS leads,
    COALESCE(SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END), 0) AS visits_scheduled,
    COALESCE(SUM(CASE WHEN outcome IS NOT NULL THEN 1 ELSE 0 END), 0) AS labelled,
    COALESCE(SUM(CASE WHEN outcome IN ('visited', 'converted') THEN 1 ELSE 0 END), 0) AS visited,
    COALESCE(SUM(CASE WHEN outcome = 'converted' THEN 1 ELSE 0 END), 0) AS converted
FROM conversations_analytics
WHERE tenant_id = :tenant_id
GROUP BY day
ORDER BY day
