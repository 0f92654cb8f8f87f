-- What the sales team recorded: each conversation's Chatwoot labels and the outcome the tenant's
-- label mapping gives them (tenants/outcomes.py), and the monitoring tables measured against them.
-- The outcome is never part of the content hash: a label change is never analysed again.

ALTER TABLE chatwoot_conversations ADD COLUMN labels TEXT;
-- 'converted', 'visited', 'lead', 'not_lead', or NULL when no label maps to an outcome.
ALTER TABLE chatwoot_conversations ADD COLUMN outcome TEXT;
ALTER TABLE conversations_analytics ADD COLUMN labels TEXT;
ALTER TABLE conversations_analytics ADD COLUMN outcome TEXT;

-- One row per tenant and month (first day): the funnel. leads and visits_scheduled as the loaded
-- analysis says; visited (visited or converted) and converted as the labels say.
CREATE TABLE IF NOT EXISTS lead_funnel (
    tenant_id         INTEGER NOT NULL,
    month             TEXT NOT NULL,
    conversations     INTEGER NOT NULL,
    leads             INTEGER NOT NULL,
    visits_scheduled  INTEGER NOT NULL,
    labelled          INTEGER NOT NULL,
    visited           INTEGER NOT NULL,
    converted         INTEGER NOT NULL,
    -- converted / leads, NULL without leads; labelled / conversations
    conversion_rate   DOUBLE PRECISION,
    labelled_share    DOUBLE PRECISION,
    small_sample      BOOLEAN NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

-- One row per tenant, month, analyzer (model, prompt version) and scope, over the labelled
-- conversations it answered for their current content. scope 'all': every such conversation;
-- 'paired': only those the other analyzer answered too, so both are scored on the same ones.
-- Rates are NULL when their count is 0; the counts beside them say how many they are over.
CREATE TABLE IF NOT EXISTS analyzer_quality (
    tenant_id          INTEGER NOT NULL,
    month              TEXT NOT NULL,
    analyzer           TEXT NOT NULL,
    model              TEXT NOT NULL,
    prompt_version     TEXT NOT NULL,
    scope              TEXT NOT NULL,
    labelled           INTEGER NOT NULL,
    is_lead_tp         INTEGER NOT NULL,
    is_lead_fp         INTEGER NOT NULL,
    is_lead_fn         INTEGER NOT NULL,
    is_lead_tn         INTEGER NOT NULL,
    is_lead_precision  DOUBLE PRECISION,
    is_lead_recall     DOUBLE PRECISION,
    is_lead_f1         DOUBLE PRECISION,
    visita_tp          INTEGER NOT NULL,
    visita_fp          INTEGER NOT NULL,
    visita_fn          INTEGER NOT NULL,
    visita_tn          INTEGER NOT NULL,
    visita_precision   DOUBLE PRECISION,
    visita_recall      DOUBLE PRECISION,
    converted          INTEGER NOT NULL,
    auc_converted      DOUBLE PRECISION,
    small_sample       BOOLEAN NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month, analyzer, model, prompt_version, scope)
);

-- The conversion rate at each probabilidade_conversao (0 to 5), same rows and scopes as above.
CREATE TABLE IF NOT EXISTS analyzer_calibration (
    tenant_id                INTEGER NOT NULL,
    month                    TEXT NOT NULL,
    analyzer                 TEXT NOT NULL,
    model                    TEXT NOT NULL,
    prompt_version           TEXT NOT NULL,
    scope                    TEXT NOT NULL,
    probabilidade_conversao  INTEGER NOT NULL,
    conversations            INTEGER NOT NULL,
    converted                INTEGER NOT NULL,
    conversion_rate          DOUBLE PRECISION,
    small_sample             BOOLEAN NOT NULL,
    updated_at               TEXT NOT NULL,
    PRIMARY KEY (tenant_id, month, analyzer, model, prompt_version, scope, probabilidade_conversao)
);
