-- The OpenAI rate limit shared by every step, run and machine (allpfit_etl/analysis/shared_rate_limit.py).
-- Times are epoch seconds of this database server's clock, so machines never compare their own clocks.

-- One row per analyze_chunk step sending requests now; it renews expires_at every second.
CREATE TABLE IF NOT EXISTS openai_rate_leases (
    lease_id     TEXT PRIMARY KEY,
    account_key  TEXT NOT NULL,
    run_id       TEXT,
    expires_at   DOUBLE PRECISION NOT NULL
);

CREATE INDEX IF NOT EXISTS openai_rate_leases_account ON openai_rate_leases (account_key, expires_at);

-- The account's limits as the server last stated them (x-ratelimit-limit-*); 0 = none enforced.
CREATE TABLE IF NOT EXISTS openai_account_limits (
    account_key  TEXT PRIMARY KEY,
    rpm          INTEGER NOT NULL,
    tpm          INTEGER NOT NULL,
    learned_at   DOUBLE PRECISION NOT NULL
);

-- A run stopped by an account error (quota, key, model, rejected request): its other steps stop too.
CREATE TABLE IF NOT EXISTS openai_run_stops (
    run_id      TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    stopped_at  DOUBLE PRECISION NOT NULL
);

-- chunk_size 50 and max_concurrency 20 were written into every tenant's features as defaults;
-- both are now derived from the rate limit unless a tenant sets them.
UPDATE tenant_configs SET features = features - 'chunk_size' WHERE features ->> 'chunk_size' = '50';

UPDATE tenant_configs SET features = features - 'max_concurrency' WHERE features ->> 'max_concurrency' = '20';
