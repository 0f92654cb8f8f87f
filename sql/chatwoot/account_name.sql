SELECT name FROM accounts WHERE id = :account_id
