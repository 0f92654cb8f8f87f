-- A paid line whose answer is unusable: its ledger row is written once; the request stays open
-- until its resubmission takes it over.
UPDATE llm_batch_requests SET error_kind = 'billed_invalid'
WHERE batch_key = :batch_key AND custom_id = :custom_id AND state = 'open'
  AND COALESCE(error_kind, '') <> 'billed_invalid'
