-- First and last conversation creation times of the given accounts.
SELECT MIN(created_at) AS first_at, MAX(created_at) AS last_at FROM conversations WHERE account_id IN :account_ids
