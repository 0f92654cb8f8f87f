DELETE FROM openai_rate_leases WHERE expires_at < :before
