-- The llm_usage ledger of a tenant between two instants, with each call's mode (realtime or batch).
SELECT created_at, model, COALESCE(mode, 'realtime') AS mode, status, prompt_tokens, cached_tokens,
       completion_tokens, total_tokens, cost_usd, cost_brl, latency_ms
FROM llm_usage
WHERE tenant_id = :tenant_id AND created_at >= :since AND created_at < :until
ORDER BY id
