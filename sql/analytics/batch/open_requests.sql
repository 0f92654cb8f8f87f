SELECT custom_id, conversation_id, content_hash, day, attempt
FROM llm_batch_requests
WHERE batch_key = :batch_key AND state = 'open'
ORDER BY conversation_id
