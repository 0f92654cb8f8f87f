UPDATE llm_batches SET
    status = :status, request_total = :total, request_completed = :completed, request_failed = :failed,
    output_file_id = :output_file_id, error_file_id = :error_file_id, error = COALESCE(:error, error),
    ended_at = CASE WHEN :ended THEN COALESCE(ended_at, :now) ELSE ended_at END
WHERE batch_key = :batch_key
