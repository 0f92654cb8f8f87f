-- The days a tenant has conversations on (the months the first agreement refresh recomputes).
SELECT DISTINCT day FROM chatwoot_conversations WHERE tenant_id = :tenant_id
