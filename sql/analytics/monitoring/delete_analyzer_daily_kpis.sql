DELETE FROM analyzer_daily_kpis WHERE tenant_id = :tenant_id AND day >= :first_day AND day <= :last_day
