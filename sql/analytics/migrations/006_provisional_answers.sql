-- Live operation: an OpenAI tenant's conversation is paid for once it has settled. Until then the
-- free regex answer is loaded, marked provisional; the final answer replaces it.

ALTER TABLE pending_conversations ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT FALSE;

-- 'final' (the tenant's analyzer) or 'provisional' (regex, until the conversation settles).
ALTER TABLE conversations_analytics ADD COLUMN answer_kind TEXT NOT NULL DEFAULT 'final';

-- The activity sensor looks for provisional answers whose conversation has settled.
CREATE INDEX IF NOT EXISTS conversations_analytics_provisional
    ON conversations_analytics (tenant_id, last_activity_at) WHERE answer_kind = 'provisional';
