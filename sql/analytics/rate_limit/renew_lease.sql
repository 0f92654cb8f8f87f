INSERT INTO openai_rate_leases (lease_id, account_key, run_id, expires_at)
VALUES (:lease_id, :account_key, :run_id, :expires_at)
ON CONFLICT (lease_id) DO UPDATE SET expires_at = excluded.expires_at
