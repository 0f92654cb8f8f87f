DELETE FROM analyzer_disagreements WHERE tenant_id = :tenant_id AND month = :month
