DELETE FROM analyzer_calibration WHERE tenant_id = :tenant_id
