UPDATE llm_batches SET
    status = :status, ingested_at = :now, error = COALESCE(:error, error),
    cost_usd = (SELECT COALESCE(SUM(cost_usd), 0) FROM llm_usage WHERE batch_id = :batch_id),
    cost_brl = (SELECT COALESCE(SUM(cost_brl), 0) FROM llm_usage WHERE batch_id = :batch_id)
WHERE batch_key = :batch_key
