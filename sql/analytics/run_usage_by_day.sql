-- The llm_usage ledger rows one run wrote for a tenant, summed per partition day of their conversation.
SELECT
    c.day AS day,
    COALESCE(SUM(CASE WHEN u.prompt_tokens > 0 OR u.completion_tokens > 0 THEN 1 ELSE 0 END), 0) AS calls,
    COALESCE(SUM(u.prompt_tokens), 0) AS prompt_tokens,
    COALESCE(SUM(u.cached_tokens), 0) AS cached_tokens,
    COALESCE(SUM(u.completion_tokens), 0) AS completion_tokens,
    COALESCE(SUM(u.total_tokens), 0) AS total_tokens,
    COALESCE(SUM(u.cost_usd), 0) AS cost_usd,
    COALESCE(SUM(u.cost_brl), 0) AS cost_brl,
    COALESCE(SUM(CASE WHEN u.attempt > 1 THEN 1 ELSE 0 END), 0) AS retries,
    -- calls of a model with no known price: ledgered at 0, their cost unknown
    COALESCE(SUM(CASE WHEN NOT u.priced AND (u.prompt_tokens > 0 OR u.completion_tokens > 0) THEN 1 ELSE 0 END), 0)
        AS unpriced_calls
FROM llm_usage u
JOIN chatwoot_conversations c ON c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id
WHERE u.run_id = :run_id AND u.tenant_id = :tenant_id
GROUP BY c.day
