SELECT COUNT(*) FROM openai_rate_leases WHERE account_key = :account_key AND expires_at > :now
