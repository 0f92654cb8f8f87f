-- The text columns of a partition's rows, scanned for NUL bytes (or their escaped form).
SELECT message_compiled, contact_name, nome_mapeado_bot, analise_ia, inbox_name
FROM conversations_analytics
WHERE tenant_id = :tenant_id AND day = :day
