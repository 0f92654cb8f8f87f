-- Conversations of one Chatwoot account created within [start_utc, end_utc): one local day.
-- Chatwoot stores UTC in timestamp-without-time-zone columns. Keyset-paginated by id.
SELECT
    c.id               AS conversation_id,
    c.display_id       AS display_id,
    c.inbox_id         AS inbox_id,
    i.name             AS inbox_name,
    c.status           AS status,
    c.created_at       AS created_at,
    c.updated_at       AS updated_at,
    c.last_activity_at AS last_activity_at,
    ct.name            AS contact_name,
    -- What the sales team recorded (tenants/outcomes.py); the JSON attributes as text on both
    -- dialects, and only for a tenant that maps one (a big day need not carry them).
    c.cached_label_list AS labels,
    CASE WHEN :read_attributes THEN CAST(c.custom_attributes AS TEXT) END  AS conversation_attributes,
    CASE WHEN :read_attributes THEN CAST(ct.custom_attributes AS TEXT) END AS contact_attributes
FROM conversations c
LEFT JOIN inboxes i ON i.id = c.inbox_id
LEFT JOIN contacts ct ON ct.id = c.contact_id
WHERE c.account_id = :account_id
  AND c.created_at >= :start_utc
  AND c.created_at < :end_utc
  AND c.id > :after_id
ORDER BY c.id
LIMIT :batch_size
