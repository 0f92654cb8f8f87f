SELECT u.created_at, t.slug, u.model, u.total_tokens, u.cost_usd, u.latency_ms, u.status
FROM llm_usage u
JOIN tenant_configs t ON t.tenant_id = u.tenant_id
ORDER BY u.created_at DESC, u.id DESC
LIMIT :limit
