-- `allpfit-etl eval`: one row per evaluation of an analyzer (and prompt version) against a labelled
-- set, so versions can be compared over time. No tenant's data: the set is identified by the
-- sha256 of its file. Figures are NULL where undefined (no positive label, one class only).
CREATE TABLE IF NOT EXISTS prompt_evaluations (
    evaluation_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluated_at         TEXT NOT NULL,
    set_name             TEXT NOT NULL,
    set_fingerprint      TEXT NOT NULL,
    analyzer             TEXT NOT NULL,
    model                TEXT NOT NULL,
    prompt_version       TEXT NOT NULL,
    endpoint             TEXT,
    conversations        INTEGER NOT NULL,
    answered             INTEGER NOT NULL,
    is_lead_tp           INTEGER NOT NULL,
    is_lead_fp           INTEGER NOT NULL,
    is_lead_fn           INTEGER NOT NULL,
    is_lead_tn           INTEGER NOT NULL,
    is_lead_precision    DOUBLE PRECISION,
    is_lead_recall       DOUBLE PRECISION,
    is_lead_f1           DOUBLE PRECISION,
    is_lead_kappa        DOUBLE PRECISION,
    visita_tp            INTEGER NOT NULL,
    visita_fp            INTEGER NOT NULL,
    visita_fn            INTEGER NOT NULL,
    visita_tn            INTEGER NOT NULL,
    visita_precision     DOUBLE PRECISION,
    visita_recall        DOUBLE PRECISION,
    visita_f1            DOUBLE PRECISION,
    visita_kappa         DOUBLE PRECISION,
    probabilidade_mae    DOUBLE PRECISION,
    nome_exact           DOUBLE PRECISION,
    calls                INTEGER NOT NULL,
    prompt_tokens        BIGINT NOT NULL,
    cached_tokens        BIGINT NOT NULL,
    completion_tokens    BIGINT NOT NULL,
    cost_usd             DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS prompt_evaluations_set ON prompt_evaluations (set_fingerprint, evaluated_at);
