SELECT 1 FROM tenant_configs WHERE slug = :s
