-- Guarded by state = 'open': a line is settled once, however often ingestion restarts.
UPDATE llm_batch_requests SET state = :state, error_kind = :error_kind
WHERE batch_key = :batch_key AND custom_id = :custom_id AND state = 'open'
