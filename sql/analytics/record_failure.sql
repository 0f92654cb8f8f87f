-- A conversation that still failed after its retries; attempts accumulate across runs.
INSERT INTO analysis_failures
    (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version, error_kind, attempts, message, failed_at)
VALUES
    (:tenant_id, :conversation_id, :content_hash, :analyzer, :model, :prompt_version, :error_kind, :attempts, :message, :failed_at)
ON CONFLICT (tenant_id, conversation_id, content_hash, analyzer, model, prompt_version) DO UPDATE SET
    error_kind = excluded.error_kind,
    attempts   = analysis_failures.attempts + excluded.attempts,
    message    = excluded.message,
    failed_at  = excluded.failed_at
