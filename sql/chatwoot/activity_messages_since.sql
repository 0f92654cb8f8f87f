-- New messages of the given accounts after the cursor (created_at, id), oldest first.
-- Index-friendly on real Chatwoot: index_messages_on_account_created_type (account_id, created_at, ...).
SELECT m.id AS id, m.created_at AS ts, c.account_id AS account_id, c.created_at AS conversation_created_at
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.account_id IN :account_ids
  AND (m.created_at > :ts OR (m.created_at = :ts AND m.id > :id))
ORDER BY m.created_at, m.id
LIMIT :limit
