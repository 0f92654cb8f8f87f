-- The dashboard's spend per tenant and day (every model and mode summed).
SELECT t.slug, s.day, SUM(s.cost_brl) AS cost_brl, SUM(s.cost_usd) AS cost_usd, SUM(s.calls) AS calls
FROM llm_spend_daily s
JOIN tenant_configs t ON t.tenant_id = s.tenant_id
WHERE t.enabled = TRUE
GROUP BY t.slug, s.day
ORDER BY t.slug, s.day
