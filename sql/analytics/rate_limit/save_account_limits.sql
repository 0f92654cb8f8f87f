INSERT INTO openai_account_limits (account_key, rpm, tpm, learned_at)
VALUES (:account_key, :rpm, :tpm, :now)
ON CONFLICT (account_key) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm, learned_at = excluded.learned_at
