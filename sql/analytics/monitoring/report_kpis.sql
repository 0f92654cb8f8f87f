-- The dashboard's loaded-answer KPIs per tenant and day.
SELECT t.slug, k.day, k.conversations, k.leads, k.lead_rate, k.visits_scheduled, k.high_probability
FROM tenant_daily_kpis k
JOIN tenant_configs t ON t.tenant_id = k.tenant_id
WHERE t.enabled = TRUE
ORDER BY t.slug, k.day
