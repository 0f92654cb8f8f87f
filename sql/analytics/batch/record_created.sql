UPDATE llm_batches SET batch_id = :batch_id, input_file_id = :file_id, status = :status, submitted_at = :now
WHERE batch_key = :batch_key
