-- The intent, written before the upload; a resubmission with the same key finds it instead.
INSERT INTO llm_batches
    (batch_key, tenant_id, model, prompt_version, partitions, conversation_count, status,
     estimated_cost_usd, estimated_cost_brl, parent_key, run_id, created_at)
VALUES
    (:batch_key, :tenant_id, :model, :prompt_version, :partitions, :conversation_count, 'preparing',
     :estimated_cost_usd, :estimated_cost_brl, :parent_key, :run_id, :now)
ON CONFLICT (batch_key) DO NOTHING
