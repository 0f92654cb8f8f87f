SELECT EXTRACT(EPOCH FROM clock_timestamp())
