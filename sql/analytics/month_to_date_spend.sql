SELECT COALESCE(SUM(cost_brl), 0) AS spent_brl, COALESCE(SUM(cost_usd), 0) AS spent_usd
FROM llm_usage
WHERE tenant_id = :tenant_id AND created_at >= :since
