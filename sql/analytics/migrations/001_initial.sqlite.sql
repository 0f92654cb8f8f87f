-- allpfit-etl analytics schema, SQLite. Applied once by `allpfit-etl init` (schema_migrations).

CREATE TABLE IF NOT EXISTS tenant_configs (
    tenant_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    slug                 TEXT NOT NULL UNIQUE CHECK (slug <> '' AND slug NOT GLOB '*[^a-z0-9_]*'),
    name                 TEXT NOT NULL,
    chatwoot_account_id  INTEGER NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    features             TEXT NOT NULL DEFAULT '{}',
    created_at           TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at           TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS chatwoot_conversations (
    tenant_id               INTEGER NOT NULL REFERENCES tenant_configs (tenant_id),
    conversation_id         BIGINT NOT NULL,
    day                     TEXT NOT NULL,
    display_id              INTEGER NOT NULL,
    inbox_id                INTEGER,
    inbox_name              TEXT,
    status                  TEXT,
    conversation_created_at TEXT NOT NULL,
    conversation_updated_at TEXT,
    last_activity_at        TEXT,
    contact_name            TEXT,
    contact_messages_count  INTEGER NOT NULL,
    message_compiled        TEXT NOT NULL,
    content_hash            TEXT NOT NULL,
    extracted_at            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS chatwoot_conversations_day ON chatwoot_conversations (tenant_id, day);

CREATE TABLE IF NOT EXISTS pending_conversations (
    tenant_id        INTEGER NOT NULL,
    conversation_id  BIGINT NOT NULL,
    day              TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    reason           TEXT NOT NULL,
    queued_at        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS pending_conversations_day ON pending_conversations (tenant_id, day);

-- Every answer, stored the moment it exists: the exactly-once spend ledger of analyses.
CREATE TABLE IF NOT EXISTS conversation_analyses (
    tenant_id                INTEGER NOT NULL,
    conversation_id          BIGINT NOT NULL,
    content_hash             TEXT NOT NULL,
    analyzer                 TEXT NOT NULL,
    model                    TEXT NOT NULL,
    prompt_version           TEXT NOT NULL,
    is_lead                  BOOLEAN NOT NULL,
    visita_agendada          BOOLEAN NOT NULL,
    probabilidade_conversao  INTEGER NOT NULL CHECK (probabilidade_conversao BETWEEN 0 AND 5),
    nome_mapeado_bot         TEXT,
    analise_ia               TEXT NOT NULL,
    prompt_tokens            INTEGER NOT NULL DEFAULT 0,
    cached_tokens            INTEGER NOT NULL DEFAULT 0,
    completion_tokens        INTEGER NOT NULL DEFAULT 0,
    cost_usd                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    analyzed_at              TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version)
);

CREATE TABLE IF NOT EXISTS analysis_failures (
    tenant_id        INTEGER NOT NULL,
    conversation_id  BIGINT NOT NULL,
    content_hash     TEXT NOT NULL,
    analyzer         TEXT NOT NULL,
    model            TEXT NOT NULL,
    prompt_version   TEXT NOT NULL,
    error_kind       TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    message          TEXT,
    failed_at        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version)
);

-- One row per API call, successful or not.
CREATE TABLE IF NOT EXISTS llm_usage (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id          INTEGER NOT NULL,
    conversation_id    BIGINT NOT NULL,
    model              TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    total_tokens       INTEGER NOT NULL DEFAULT 0,
    cost_usd           DOUBLE PRECISION NOT NULL DEFAULT 0,
    cost_brl           DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_ms         INTEGER,
    attempt            INTEGER NOT NULL,
    status             TEXT NOT NULL,
    error_kind         TEXT,
    run_id             TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_usage_tenant_time ON llm_usage (tenant_id, created_at);

CREATE TABLE IF NOT EXISTS conversations_analytics (
    tenant_id                INTEGER NOT NULL,
    conversation_id          BIGINT NOT NULL,
    day                      TEXT NOT NULL,
    display_id               INTEGER NOT NULL,
    inbox_id                 INTEGER,
    inbox_name               TEXT,
    status                   TEXT,
    conversation_created_at  TEXT NOT NULL,
    conversation_updated_at  TEXT,
    last_activity_at         TEXT,
    contact_name             TEXT,
    contact_messages_count   INTEGER NOT NULL,
    message_compiled         TEXT NOT NULL,
    content_hash             TEXT NOT NULL,
    is_lead                  BOOLEAN NOT NULL,
    visita_agendada          BOOLEAN NOT NULL,
    probabilidade_conversao  INTEGER NOT NULL CHECK (probabilidade_conversao BETWEEN 0 AND 5),
    nome_mapeado_bot         TEXT,
    analise_ia               TEXT NOT NULL,
    analyzer                 TEXT NOT NULL,
    model                    TEXT NOT NULL,
    prompt_version           TEXT NOT NULL,
    analyzed_at              TEXT NOT NULL,
    loaded_at                TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS conversations_analytics_day ON conversations_analytics (tenant_id, day);

CREATE TABLE IF NOT EXISTS tenant_daily_kpis (
    tenant_id         INTEGER NOT NULL,
    day               TEXT NOT NULL,
    conversations     INTEGER NOT NULL,
    leads             INTEGER NOT NULL,
    lead_rate         DOUBLE PRECISION NOT NULL,
    visits_scheduled  INTEGER NOT NULL,
    high_probability  INTEGER NOT NULL,
    named_contacts    INTEGER NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);
