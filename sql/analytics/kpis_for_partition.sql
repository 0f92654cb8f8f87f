SELECT conversations, leads, lead_rate, visits_scheduled, high_probability, named_contacts
FROM tenant_daily_kpis WHERE tenant_id = :tenant_id AND day = :day
