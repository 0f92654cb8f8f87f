DELETE FROM llm_spend_daily WHERE tenant_id = :tenant_id AND day >= :first_day AND day <= :last_day
