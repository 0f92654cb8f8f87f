-- The subset of Chatwoot's real schema (chatwoot/chatwoot db/schema.rb) that allpfit-etl reads.
-- Used for the demo and the tests; production reads a real Chatwoot database.

CREATE TABLE IF NOT EXISTS accounts (
    id          SERIAL PRIMARY KEY,
    name        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    locale      INTEGER DEFAULT 0,
    status      INTEGER DEFAULT 0
);

CREATE TABLE IF NOT EXISTS inboxes (
    id            SERIAL PRIMARY KEY,
    channel_id    INTEGER NOT NULL,
    account_id    INTEGER NOT NULL,
    name          VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    channel_type  VARCHAR,
    timezone      VARCHAR DEFAULT 'UTC'
);
CREATE INDEX IF NOT EXISTS index_inboxes_on_account_id ON inboxes (account_id);

CREATE TABLE IF NOT EXISTS contacts (
    id                     SERIAL PRIMARY KEY,
    name                   VARCHAR DEFAULT '',
    email                  VARCHAR,
    phone_number           VARCHAR,
    account_id             INTEGER NOT NULL,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL,
    additional_attributes  JSONB DEFAULT '{}',
    identifier             VARCHAR,
    custom_attributes      JSONB DEFAULT '{}',
    last_activity_at       TIMESTAMP
);
CREATE INDEX IF NOT EXISTS index_contacts_on_account_id ON contacts (account_id);

CREATE TABLE IF NOT EXISTS conversations (
    id                     SERIAL PRIMARY KEY,
    account_id             INTEGER NOT NULL,
    inbox_id               INTEGER NOT NULL,
    status                 INTEGER DEFAULT 0 NOT NULL,
    assignee_id            INTEGER,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL,
    contact_id             BIGINT,
    display_id             INTEGER NOT NULL,
    contact_last_seen_at   TIMESTAMP,
    agent_last_seen_at     TIMESTAMP,
    additional_attributes  JSONB DEFAULT '{}',
    contact_inbox_id       BIGINT,
    identifier             VARCHAR,
    last_activity_at       TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
    team_id                BIGINT,
    campaign_id            BIGINT,
    custom_attributes      JSONB DEFAULT '{}',
    priority               INTEGER,
    cached_label_list      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS index_conversations_on_account_id_and_display_id ON conversations (account_id, display_id);
CREATE INDEX IF NOT EXISTS index_conversations_on_id_and_account_id ON conversations (account_id, id);
CREATE INDEX IF NOT EXISTS index_conversations_on_account_id ON conversations (account_id);
CREATE INDEX IF NOT EXISTS index_conversations_on_contact_id ON conversations (contact_id);
CREATE INDEX IF NOT EXISTS index_conversations_on_inbox_id ON conversations (inbox_id);
-- Added by allpfit-etl for the demo and the benchmarks; a real Chatwoot may lack them.
CREATE INDEX IF NOT EXISTS allpfit_conversations_account_created ON conversations (account_id, created_at);
CREATE INDEX IF NOT EXISTS allpfit_conversations_updated_id ON conversations (updated_at, id);

CREATE TABLE IF NOT EXISTS messages (
    id                         SERIAL PRIMARY KEY,
    content                    TEXT,
    account_id                 INTEGER NOT NULL,
    inbox_id                   INTEGER NOT NULL,
    conversation_id            INTEGER NOT NULL,
    message_type               INTEGER NOT NULL,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL,
    private                    BOOLEAN DEFAULT FALSE NOT NULL,
    status                     INTEGER DEFAULT 0,
    source_id                  VARCHAR,
    content_type               INTEGER DEFAULT 0 NOT NULL,
    content_attributes         JSON DEFAULT '{}',
    sender_type                VARCHAR,
    sender_id                  BIGINT,
    external_source_ids        JSONB DEFAULT '{}',
    additional_attributes      JSONB DEFAULT '{}',
    processed_message_content  TEXT,
    sentiment                  JSONB DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS index_messages_on_conversation_id ON messages (conversation_id);
CREATE INDEX IF NOT EXISTS index_messages_on_account_created_type ON messages (account_id, created_at, message_type);
CREATE INDEX IF NOT EXISTS index_messages_on_created_at ON messages (created_at);
-- Added by allpfit-etl for the demo and the benchmarks; a real Chatwoot may lack it.
CREATE INDEX IF NOT EXISTS allpfit_messages_updated_id ON messages (updated_at, id);

CREATE TABLE IF NOT EXISTS attachments (
    id               SERIAL PRIMARY KEY,
    file_type        INTEGER DEFAULT 0,
    external_url     VARCHAR,
    message_id       INTEGER NOT NULL,
    account_id       INTEGER NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    fallback_title   VARCHAR,
    extension        VARCHAR,
    meta             JSONB DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS index_attachments_on_message_id ON attachments (message_id);
