SELECT b.batch_key, b.batch_id, t.slug, b.model, b.status, b.conversation_count, b.request_total,
       b.request_completed, b.request_failed, b.estimated_cost_usd, b.cost_usd, b.cost_brl, b.error,
       b.created_at, b.ended_at, b.ingested_at, b.partitions
FROM llm_batches b JOIN tenant_configs t ON t.tenant_id = b.tenant_id
ORDER BY b.created_at, b.batch_key
