-- Per tenant: spend since the start of the local day and of the local month, and the recent call rate.
SELECT
    tenant_id,
    COALESCE(SUM(CASE WHEN created_at >= :day_start THEN cost_brl ELSE 0 END), 0)   AS today_brl,
    COALESCE(SUM(CASE WHEN created_at >= :day_start THEN cost_usd ELSE 0 END), 0)   AS today_usd,
    COALESCE(SUM(cost_brl), 0)                                                      AS month_brl,
    COALESCE(SUM(cost_usd), 0)                                                      AS month_usd,
    COALESCE(SUM(CASE WHEN created_at >= :recent AND status = 'ok' THEN 1 ELSE 0 END), 0) AS recent_ok
FROM llm_usage
WHERE created_at >= :month_start
GROUP BY tenant_id
