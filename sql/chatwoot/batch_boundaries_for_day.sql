-- The last id of every full keyset batch of conversations_for_day (every batch_size-th id of the
-- day, in id order): each is the after_id of the next batch, so workers can read batches at once.
SELECT id FROM (
    SELECT c.id AS id, ROW_NUMBER() OVER (ORDER BY c.id) AS position
    FROM conversations c
    WHERE c.account_id = :account_id
      AND c.created_at >= :start_utc
      AND c.created_at < :end_utc
) numbered
WHERE position % :batch_size = 0
ORDER BY id
