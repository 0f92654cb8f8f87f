-- Extract replaces its (tenant, day) partition.
DELETE FROM chatwoot_conversations WHERE tenant_id = :t AND day = :d
