INSERT INTO tenant_configs (slug, name, chatwoot_account_id, enabled, features, created_at, updated_at)
VALUES (:slug, :name, :account, TRUE, :features, :now, :now)
