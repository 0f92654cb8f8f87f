-- The conversations of one (tenant, day) partition.
SELECT conversation_id FROM chatwoot_conversations WHERE tenant_id = :tenant_id AND day = :day
