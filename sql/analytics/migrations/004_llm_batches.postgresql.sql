-- OpenAI Batch API submissions. A row is written BEFORE its file is uploaded: batch_key is the
-- client's idempotency key (also the file name and the batch's metadata), then the file id,
-- then the batch id, so a restart finds whatever a killed process left half done.
CREATE TABLE IF NOT EXISTS llm_batches (
    batch_key           TEXT PRIMARY KEY,
    tenant_id           INTEGER NOT NULL,
    model               TEXT NOT NULL,
    prompt_version      TEXT NOT NULL,
    partitions          TEXT NOT NULL,
    conversation_count  INTEGER NOT NULL,
    status              TEXT NOT NULL,
    input_file_id       TEXT,
    batch_id            TEXT UNIQUE,
    output_file_id      TEXT,
    error_file_id       TEXT,
    request_total       INTEGER NOT NULL DEFAULT 0,
    request_completed   INTEGER NOT NULL DEFAULT 0,
    request_failed      INTEGER NOT NULL DEFAULT 0,
    estimated_cost_usd  DOUBLE PRECISION NOT NULL DEFAULT 0,
    estimated_cost_brl  DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_brl            DOUBLE PRECISION NOT NULL DEFAULT 0,
    error               TEXT,
    parent_key          TEXT,
    run_id              TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    uploaded_at         TIMESTAMPTZ,
    submitted_at        TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    ingested_at         TIMESTAMPTZ,
    runs_requested_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS llm_batches_not_ingested ON llm_batches (tenant_id) WHERE ingested_at IS NULL;

-- One row per request line. state 'open' = the conversation is in batch: no other run submits it.
CREATE TABLE IF NOT EXISTS llm_batch_requests (
    batch_key        TEXT NOT NULL REFERENCES llm_batches (batch_key),
    custom_id        TEXT NOT NULL,
    tenant_id        INTEGER NOT NULL,
    conversation_id  BIGINT NOT NULL,
    content_hash     TEXT NOT NULL,
    day              DATE NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 1,
    state            TEXT NOT NULL,
    error_kind       TEXT,
    PRIMARY KEY (batch_key, custom_id)
);
CREATE INDEX IF NOT EXISTS llm_batch_requests_open ON llm_batch_requests (tenant_id, conversation_id) WHERE state = 'open';

ALTER TABLE llm_usage ADD COLUMN IF NOT EXISTS mode TEXT NOT NULL DEFAULT 'realtime';
ALTER TABLE llm_usage ADD COLUMN IF NOT EXISTS batch_id TEXT;
CREATE INDEX IF NOT EXISTS llm_usage_batch ON llm_usage (batch_id) WHERE batch_id IS NOT NULL;
