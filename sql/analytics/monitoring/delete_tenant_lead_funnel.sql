DELETE FROM lead_funnel WHERE tenant_id = :tenant_id
