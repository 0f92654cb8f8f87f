SELECT COUNT(*) FROM conversations_analytics WHERE tenant_id = :tenant_id AND day = :day
  AND (probabilidade_conversao < 0 OR probabilidade_conversao > 5 OR probabilidade_conversao IS NULL)
