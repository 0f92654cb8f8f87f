-- Per tenant: extracted, analyzed (current), pending, failed and the lead counts.
SELECT
    t.tenant_id, t.slug, t.name, t.enabled, t.features,
    (SELECT COUNT(*) FROM chatwoot_conversations c WHERE c.tenant_id = t.tenant_id) AS total,
    (SELECT COUNT(*) FROM conversations_analytics a
       JOIN chatwoot_conversations c ON c.tenant_id = a.tenant_id AND c.conversation_id = a.conversation_id
                                    AND c.content_hash = a.content_hash
      WHERE a.tenant_id = t.tenant_id) AS analyzed,
    (SELECT COUNT(*) FROM pending_conversations p WHERE p.tenant_id = t.tenant_id) AS pending,
    (SELECT COUNT(*) FROM pending_conversations p
      WHERE p.tenant_id = t.tenant_id AND EXISTS (
        SELECT 1 FROM analysis_failures f
         WHERE f.tenant_id = p.tenant_id AND f.conversation_id = p.conversation_id
           AND f.content_hash = p.content_hash)) AS failed,
    (SELECT COUNT(*) FROM conversations_analytics a WHERE a.tenant_id = t.tenant_id AND a.is_lead) AS leads,
    (SELECT COUNT(*) FROM conversations_analytics a WHERE a.tenant_id = t.tenant_id AND a.visita_agendada) AS visits,
    (SELECT COUNT(*) FROM conversations_analytics a
      WHERE a.tenant_id = t.tenant_id AND a.probabilidade_conversao >= 4) AS high_probability,
    (SELECT COUNT(*) FROM conversations_analytics a
      WHERE a.tenant_id = t.tenant_id AND a.nome_mapeado_bot IS NOT NULL AND a.nome_mapeado_bot <> '') AS named
FROM tenant_configs t
ORDER BY t.tenant_id
