SELECT batch_key, tenant_id, model, prompt_version, batch_id, status, created_at
FROM llm_batches
WHERE batch_id IS NOT NULL AND ingested_at IS NULL
ORDER BY created_at, batch_key
