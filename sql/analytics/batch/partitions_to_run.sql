-- Partitions with answers ingested from a batch whose follow-up runs were not requested yet.
SELECT DISTINCT b.batch_key, r.day, t.slug
FROM llm_batches b
JOIN llm_batch_requests r ON r.batch_key = b.batch_key AND r.state = 'answered'
JOIN tenant_configs t ON t.tenant_id = b.tenant_id
WHERE b.ingested_at IS NOT NULL AND b.runs_requested_at IS NULL
ORDER BY b.batch_key, r.day
