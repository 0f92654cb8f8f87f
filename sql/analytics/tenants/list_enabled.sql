SELECT tenant_id, slug, name, chatwoot_account_id, enabled, features FROM tenant_configs WHERE enabled = TRUE ORDER BY tenant_id
