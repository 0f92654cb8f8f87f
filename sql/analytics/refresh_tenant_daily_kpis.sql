-- KPIs of one (tenant, day), recomputed from the loaded analyses.
INSERT INTO tenant_daily_kpis (
    tenant_id, day, conversations, leads, lead_rate, visits_scheduled, high_probability, named_contacts, updated_at
)
SELECT
    :tenant_id,
    :day,
    COUNT(*),
    COALESCE(SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), 0),
    CASE WHEN COUNT(*) = 0 THEN 0.0
         ELSE 1.0 * COALESCE(SUM(CASE WHEN is_lead THEN 1 ELSE 0 END), 0) / COUNT(*) END,
    COALESCE(SUM(CASE WHEN visita_agendada THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN probabilidade_conversao >= 4 THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN nome_mapeado_bot IS NOT NULL AND nome_mapeado_bot <> '' THEN 1 ELSE 0 END), 0),
    :updated_at
FROM conversations_analytics
WHERE tenant_id = :tenant_id AND day = :day
ON CONFLICT (tenant_id, day) DO UPDATE SET
    conversations    = excluded.conversations,
    leads            = excluded.leads,
    lead_rate        = excluded.lead_rate,
    visits_scheduled = excluded.visits_scheduled,
    high_probability = excluded.high_probability,
    named_contacts   = excluded.named_contacts,
    updated_at       = excluded.updated_at
