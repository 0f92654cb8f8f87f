-- A model with no known price (a local model on an OpenAI-compatible server) is ledgered at cost 0
-- with priced = false: its spend is unknown, which is not the same as zero.

ALTER TABLE llm_usage ADD COLUMN priced BOOLEAN NOT NULL DEFAULT TRUE;
