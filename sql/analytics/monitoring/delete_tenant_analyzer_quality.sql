DELETE FROM analyzer_quality WHERE tenant_id = :tenant_id
