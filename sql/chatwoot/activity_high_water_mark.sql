-- Where a new activity cursor starts: the newest message and conversation change.
SELECT
    (SELECT MAX(created_at) FROM messages)      AS messages_ts,
    (SELECT MAX(id) FROM messages)              AS messages_id,
    (SELECT MAX(updated_at) FROM conversations) AS conversations_ts,
    (SELECT MAX(id) FROM conversations)         AS conversations_id
