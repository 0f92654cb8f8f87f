UPDATE llm_batches SET input_file_id = :file_id, status = 'uploaded', uploaded_at = :now
WHERE batch_key = :batch_key AND batch_id IS NULL
