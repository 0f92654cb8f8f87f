-- The pending filter replaces its (tenant, day) partition.
DELETE FROM pending_conversations WHERE tenant_id = :t AND day = :d
