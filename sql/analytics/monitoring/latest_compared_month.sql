-- The tenant's latest month with any conversation compared (compare's default --month).
SELECT MAX(month) AS month FROM analyzer_agreement WHERE tenant_id = :tenant_id AND compared > 0
