DELETE FROM analyzer_agreement WHERE tenant_id = :tenant_id AND month = :month
