-- Public, non-activity messages of one batch of conversations_for_day (the conversations of the
-- day with id in (after_id, last_id]), in chronological order. Selecting the batch again here,
-- rather than sending its ids, keeps the statement small: an IN list of thousands of ids costs
-- more to send, convert and plan than the conversations index scan.
-- content_attributes is Chatwoot's `json` column: read as text, because it may hold \u0000
-- escapes that PostgreSQL refuses to decode server-side.
SELECT
    m.conversation_id                     AS conversation_id,
    m.created_at                          AS created_at,
    m.message_type                        AS message_type,
    m.private                             AS private,
    m.sender_type                         AS sender_type,
    m.content                             AS content,
    CAST(m.content_attributes AS TEXT)    AS content_attributes,
    CASE WHEN m.content IS NULL OR m.content = '' THEN
        (SELECT MIN(a.file_type) FROM attachments a WHERE a.message_id = m.id)
    END                                   AS attachment_type
FROM messages m
WHERE m.account_id = :account_id
  AND m.conversation_id IN (
      SELECT c.id FROM conversations c
      WHERE c.account_id = :account_id
        AND c.created_at >= :start_utc
        AND c.created_at < :end_utc
        AND c.id > :after_id
        AND c.id <= :last_id
  )
  AND m.private = FALSE
  AND m.message_type <> 2
ORDER BY m.conversation_id, m.created_at, m.id
