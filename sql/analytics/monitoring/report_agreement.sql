-- Each tenant's latest month with something compared (or its latest month at all).
SELECT t.slug, a.*
FROM analyzer_agreement a
JOIN tenant_configs t ON t.tenant_id = a.tenant_id
WHERE t.enabled = TRUE
  AND a.month = (
      SELECT MAX(b.month) FROM analyzer_agreement b
      WHERE b.tenant_id = a.tenant_id
        AND (b.compared > 0 OR NOT EXISTS (
            SELECT 1 FROM analyzer_agreement c WHERE c.tenant_id = a.tenant_id AND c.compared > 0)))
ORDER BY t.slug
