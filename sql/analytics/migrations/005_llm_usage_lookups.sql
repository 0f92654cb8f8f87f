-- The ledger is read per conversation (the CLI's range totals, the status view) and per run
-- (each partition's cost on its materialization); without these, both scan the whole ledger.

CREATE INDEX IF NOT EXISTS llm_usage_conversation ON llm_usage (tenant_id, conversation_id);

CREATE INDEX IF NOT EXISTS llm_usage_run ON llm_usage (run_id);
