UPDATE tenant_configs SET features = :f, updated_at = :now WHERE slug = :slug
