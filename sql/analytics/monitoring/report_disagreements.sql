-- The clearest disagreements of each tenant's latest month with any.
SELECT slug, display_id, regex_is_lead, openai_is_lead, regex_visita_agendada, openai_visita_agendada,
       regex_probabilidade_conversao, openai_probabilidade_conversao, regex_nome_mapeado_bot,
       openai_nome_mapeado_bot, regex_analise_ia, openai_analise_ia, transcript_start, severity
FROM (
    SELECT t.slug, d.*,
           ROW_NUMBER() OVER (PARTITION BY d.tenant_id ORDER BY d.severity DESC, d.conversation_id) AS example_rank
    FROM analyzer_disagreements d
    JOIN tenant_configs t ON t.tenant_id = d.tenant_id
    WHERE t.enabled = TRUE
      AND d.month = (SELECT MAX(e.month) FROM analyzer_disagreements e WHERE e.tenant_id = d.tenant_id)
) ranked
WHERE example_rank <= :per_tenant
ORDER BY slug, severity DESC
