-- Extracted conversations of a (tenant, day) with the analysis currently loaded for each, if any,
-- and what says whether the conversation has settled.
SELECT
    c.conversation_id,
    c.content_hash,
    c.last_activity_at,
    c.status,
    a.content_hash   AS stored_hash,
    a.analyzer       AS stored_analyzer,
    a.model          AS stored_model,
    a.prompt_version AS stored_prompt_version,
    a.answer_kind    AS stored_answer_kind
FROM chatwoot_conversations c
LEFT JOIN conversations_analytics a
       ON a.tenant_id = c.tenant_id AND a.conversation_id = c.conversation_id
WHERE c.tenant_id = :tenant_id AND c.day = :day
ORDER BY c.conversation_id
