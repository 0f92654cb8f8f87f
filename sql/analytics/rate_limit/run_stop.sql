SELECT reason FROM openai_run_stops WHERE run_id = :run_id
