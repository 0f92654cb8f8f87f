INSERT INTO openai_run_stops (run_id, reason, stopped_at) VALUES (:run_id, :reason, :now)
ON CONFLICT (run_id) DO NOTHING
