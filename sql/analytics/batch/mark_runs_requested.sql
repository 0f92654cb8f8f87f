UPDATE llm_batches SET runs_requested_at = :now
WHERE ingested_at IS NOT NULL AND runs_requested_at IS NULL AND batch_key IN :batch_keys
