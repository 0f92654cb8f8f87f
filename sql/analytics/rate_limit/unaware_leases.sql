-- Live leases of other holders last renewed before this holder's lease was committed (their expiry
-- comes before the entry time plus the TTL): they still take their old, larger share.
SELECT COUNT(*) FROM openai_rate_leases
WHERE account_key = :account_key AND expires_at > :now AND lease_id <> :lease_id AND expires_at < :entered_expiry
