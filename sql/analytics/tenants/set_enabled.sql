UPDATE tenant_configs SET enabled = :e, updated_at = :now WHERE slug = :slug
