-- The tenant's latest month with any conversation compared, as analyzer_agreement holds it.
SELECT * FROM analyzer_agreement
WHERE tenant_id = :tenant_id AND compared > 0
ORDER BY month DESC
LIMIT 1
