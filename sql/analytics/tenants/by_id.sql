SELECT tenant_id, slug, name, chatwoot_account_id, enabled, features FROM tenant_configs WHERE tenant_id = :id
