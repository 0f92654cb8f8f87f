-- The dashboard's calibration: per tenant, analyzer and probabilidade_conversao, every labelled
-- answer of every month and prompt version (scope 'all') summed.
SELECT t.slug, c.analyzer, c.probabilidade_conversao,
       SUM(c.conversations) AS conversations, SUM(c.converted) AS converted
FROM analyzer_calibration c
JOIN tenant_configs t ON t.tenant_id = c.tenant_id
WHERE t.enabled = TRUE AND c.scope = 'all'
GROUP BY t.slug, c.analyzer, c.probabilidade_conversao
ORDER BY c.analyzer, t.slug, c.probabilidade_conversao
