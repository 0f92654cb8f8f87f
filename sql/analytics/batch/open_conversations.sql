-- Conversations in batch: requested in a batch whose answers have not been ingested yet.
SELECT DISTINCT conversation_id FROM llm_batch_requests
WHERE tenant_id = :tenant_id AND state = 'open' AND conversation_id IN :conversation_ids
