-- Intents a killed process left before the batch existed (or before its id was recorded).
SELECT batch_key, tenant_id, model, prompt_version, input_file_id, parent_key, created_at
FROM llm_batches
WHERE batch_id IS NULL AND ingested_at IS NULL
ORDER BY created_at, batch_key
