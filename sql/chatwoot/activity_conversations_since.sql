-- Conversations of the given accounts updated after the cursor (updated_at, id), oldest first:
-- new conversations and status changes that come without a message.
SELECT c.id AS id, c.updated_at AS ts, c.account_id AS account_id, c.created_at AS conversation_created_at
FROM conversations c
WHERE c.account_id IN :account_ids
  AND (c.updated_at > :ts OR (c.updated_at = :ts AND c.id > :id))
ORDER BY c.updated_at, c.id
LIMIT :limit
