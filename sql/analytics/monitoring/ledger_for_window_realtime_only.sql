-- ledger_for_window for a schema whose llm_usage has no mode column yet: every call was real-time.
SELECT created_at, model, 'realtime' AS mode, status, prompt_tokens, cached_tokens,
       completion_tokens, total_tokens, cost_usd, cost_brl, latency_ms
FROM llm_usage
WHERE tenant_id = :tenant_id AND created_at >= :since AND created_at < :until
ORDER BY id
