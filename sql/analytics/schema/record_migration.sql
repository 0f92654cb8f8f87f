INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :t)
