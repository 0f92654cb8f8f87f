SELECT rpm, tpm FROM openai_account_limits WHERE account_key = :account_key
