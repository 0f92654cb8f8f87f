SELECT MAX(day) AS day FROM chatwoot_conversations WHERE tenant_id = :tenant_id
