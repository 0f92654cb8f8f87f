-- Monitoring (PostgreSQL): regex vs OpenAI agreement, the examples where they disagree, quality per analyzer
-- and LLM spend per day. Every table is recomputed delete-then-insert by the monitoring assets.

-- One row per tenant and month (first day): the two analyzers on the conversations both answered
-- for the same content hash. Rates and kappas are NULL when undefined (nothing compared, one class).
CREATE TABLE IF NOT EXISTS analyzer_agreement (
    tenant_id              INTEGER NOT NULL,
    month                  DATE NOT NULL,
    openai_model           TEXT,
    compared               INTEGER NOT NULL,
    is_lead_agreement      DOUBLE PRECISION,
    is_lead_kappa          DOUBLE PRECISION,
    visita_agreement       DOUBLE PRECISION,
    visita_kappa           DOUBLE PRECISION,
    probabilidade_mae      DOUBLE PRECISION,
    regex_lead_rate        DOUBLE PRECISION,
    openai_lead_rate       DOUBLE PRECISION,
    regex_visita_rate      DOUBLE PRECISION,
    openai_visita_rate     DOUBLE PRECISION,
    -- 2×2 matrices: <field>_<regex answer>_<openai answer>
    is_lead_true_true      INTEGER NOT NULL,
    is_lead_true_false     INTEGER NOT NULL,
    is_lead_false_true     INTEGER NOT NULL,
    is_lead_false_false    INTEGER NOT NULL,
    visita_true_true       INTEGER NOT NULL,
    visita_true_false      INTEGER NOT NULL,
    visita_false_true      INTEGER NOT NULL,
    visita_false_false     INTEGER NOT NULL,
    names_match_share      DOUBLE PRECISION,
    disagreements          INTEGER NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

-- The conversations where the analyzers disagree on is_lead or visita_agendada, or differ by
-- two or more in probabilidade_conversao: the examples a manager reads.
CREATE TABLE IF NOT EXISTS analyzer_disagreements (
    tenant_id                      INTEGER NOT NULL,
    conversation_id                BIGINT NOT NULL,
    month                          DATE NOT NULL,
    day                            DATE NOT NULL,
    display_id                     INTEGER NOT NULL,
    content_hash                   TEXT NOT NULL,
    openai_model                   TEXT NOT NULL,
    regex_is_lead                  BOOLEAN NOT NULL,
    openai_is_lead                 BOOLEAN NOT NULL,
    regex_visita_agendada          BOOLEAN NOT NULL,
    openai_visita_agendada         BOOLEAN NOT NULL,
    regex_probabilidade_conversao  INTEGER NOT NULL,
    openai_probabilidade_conversao INTEGER NOT NULL,
    regex_nome_mapeado_bot         TEXT,
    openai_nome_mapeado_bot        TEXT,
    regex_analise_ia               TEXT NOT NULL,
    openai_analise_ia              TEXT NOT NULL,
    transcript_start               TEXT NOT NULL,
    severity                       INTEGER NOT NULL,
    updated_at                     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS analyzer_disagreements_month ON analyzer_disagreements (tenant_id, month, severity);

-- Quality per tenant, day and analyzer, from every stored answer for the current content
-- (the loaded answers are in tenant_daily_kpis).
CREATE TABLE IF NOT EXISTS analyzer_daily_kpis (
    tenant_id               INTEGER NOT NULL,
    day                     DATE NOT NULL,
    analyzer                TEXT NOT NULL,
    conversations           INTEGER NOT NULL,
    leads                   INTEGER NOT NULL,
    lead_rate               DOUBLE PRECISION NOT NULL,
    visits_scheduled        INTEGER NOT NULL,
    high_probability        INTEGER NOT NULL,
    high_probability_share  DOUBLE PRECISION NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, day, analyzer)
);

-- The llm_usage ledger summed per tenant, local day, model and mode ('realtime' or 'batch').
CREATE TABLE IF NOT EXISTS llm_spend_daily (
    tenant_id          INTEGER NOT NULL,
    day                DATE NOT NULL,
    model              TEXT NOT NULL,
    mode               TEXT NOT NULL,
    calls              INTEGER NOT NULL,
    failed_calls       INTEGER NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    total_tokens       BIGINT NOT NULL,
    cost_usd           DOUBLE PRECISION NOT NULL,
    cost_brl           DOUBLE PRECISION NOT NULL,
    avg_latency_ms     DOUBLE PRECISION,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, day, model, mode)
);
