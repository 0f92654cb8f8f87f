DELETE FROM openai_rate_leases WHERE lease_id = :lease_id
