-- The dashboard's funnel per tenant and month (lead_funnel, written by its asset).
SELECT t.slug, t.name, f.month, f.conversations, f.leads, f.visits_scheduled, f.labelled, f.visited, f.converted,
       f.conversion_rate, f.labelled_share, f.small_sample
FROM lead_funnel f
JOIN tenant_configs t ON t.tenant_id = f.tenant_id
WHERE t.enabled = TRUE
ORDER BY t.slug, f.month
