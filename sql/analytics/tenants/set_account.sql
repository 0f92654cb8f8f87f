UPDATE tenant_configs SET chatwoot_account_id = :account, updated_at = :now WHERE slug = :slug
