-- This month's ledger, plus the estimate of batches submitted but not yet ingested (the budget
-- guard counts a batch when it is submitted, then at its real cost once ingested). Calls of a
-- model with no known price are ledgered at 0 with priced = false: counted apart, as unknown.
SELECT
    COALESCE((SELECT SUM(cost_brl) FROM llm_usage WHERE tenant_id = :tenant_id AND created_at >= :since), 0)
  + COALESCE((SELECT SUM(estimated_cost_brl) FROM llm_batches WHERE tenant_id = :tenant_id AND ingested_at IS NULL), 0)
    AS spent_brl,
    COALESCE((SELECT SUM(cost_usd) FROM llm_usage WHERE tenant_id = :tenant_id AND created_at >= :since), 0)
  + COALESCE((SELECT SUM(estimated_cost_usd) FROM llm_batches WHERE tenant_id = :tenant_id AND ingested_at IS NULL), 0)
    AS spent_usd,
    (SELECT COUNT(*) FROM llm_usage
      WHERE tenant_id = :tenant_id AND created_at >= :since AND NOT priced
        AND (prompt_tokens > 0 OR completion_tokens > 0)) AS unpriced_calls
