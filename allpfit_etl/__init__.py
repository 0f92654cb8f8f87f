"""allpfit-etl: Chatwoot conversations → analysed sales leads, as a Dagster code location."""
