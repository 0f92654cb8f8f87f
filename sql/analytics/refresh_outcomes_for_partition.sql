-- A label added or removed in Chatwoot re-extracts the conversation with the same content hash, so
-- it is not pending and not loaded again: copy its labels and outcome onto the loaded row alone
-- (the analysis stays as it is, nothing is analysed again).
UPDATE conversations_analytics
SET labels = c.labels, outcome = c.outcome
FROM chatwoot_conversations c
WHERE conversations_analytics.tenant_id = :tenant_id AND conversations_analytics.day = :day
  AND c.tenant_id = conversations_analytics.tenant_id
  AND c.conversation_id = conversations_analytics.conversation_id
  AND (COALESCE(c.labels, '') <> COALESCE(conversations_analytics.labels, '')
       OR COALESCE(c.outcome, '') <> COALESCE(conversations_analytics.outcome, ''))
