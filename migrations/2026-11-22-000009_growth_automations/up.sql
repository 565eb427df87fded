-- MuchLove growth automations (000): testimonial contacts and testimonials, viral demo
-- sessions, behavioural email sequences, their email events and the embeddable widget.

CREATE TABLE contacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid,
    name text NOT NULL,
    email text CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    company text,
    job_title text,
    linkedin_url text,
    linkedin_consent boolean NOT NULL DEFAULT false,
    linkedin_consent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (NOT linkedin_consent OR linkedin_consent_at IS NOT NULL),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX contacts_customer_idx ON contacts (tenant_id, customer_id);
CREATE TRIGGER contacts_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE testimonials (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    contact_id uuid NOT NULL,
    content text NOT NULL,
    rating integer CHECK (rating BETWEEN 1 AND 5),
    video_url text,
    status text NOT NULL DEFAULT 'pending_review'
        CHECK (status IN ('draft', 'pending_review', 'published', 'rejected')),
    published_at timestamptz,
    linkedin_shared_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'published' OR published_at IS NOT NULL),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX testimonials_contact_idx ON testimonials (tenant_id, contact_id);
CREATE INDEX testimonials_published_idx ON testimonials (tenant_id, published_at DESC)
    WHERE status = 'published';
CREATE TRIGGER testimonials_updated_at BEFORE UPDATE ON testimonials
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE demo_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    session_token text NOT NULL UNIQUE,
    visitor_email text,
    -- SHA-256 of the visitor's IP (GDPR: never stored in clear).
    ip_hash text CHECK (ip_hash ~ '^[0-9a-f]{64}$'),
    video_url text,
    share_count integer NOT NULL DEFAULT 0 CHECK (share_count >= 0),
    converted boolean NOT NULL DEFAULT false,
    converted_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX demo_sessions_tenant_expires_idx ON demo_sessions (tenant_id, expires_at);

CREATE TABLE email_sequences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    contact_id uuid,
    recipient_email text NOT NULL,
    segment text NOT NULL CHECK (segment IN
        ('frozen_starter', 'rejected_requester', 'collector_unused', 'free_maximizer')),
    status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
    current_step integer NOT NULL DEFAULT 0 CHECK (current_step >= 0),
    next_send_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX email_sequences_tenant_status_idx ON email_sequences (tenant_id, status, next_send_at);
CREATE INDEX email_sequences_contact_idx ON email_sequences (tenant_id, contact_id);
CREATE TRIGGER email_sequences_updated_at BEFORE UPDATE ON email_sequences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE email_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    sequence_id uuid,
    communication_log_id uuid,
    recipient_email text NOT NULL,
    email_type text NOT NULL CHECK (email_type IN ('sequence', 'notification')),
    template text,
    status text NOT NULL CHECK (status IN
        ('sent', 'delivered', 'opened', 'clicked', 'bounced', 'complained')),
    provider_message_id text,
    metadata jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, sequence_id) REFERENCES email_sequences (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, communication_log_id) REFERENCES communication_log (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX email_events_sequence_idx ON email_events (tenant_id, sequence_id, occurred_at);
CREATE INDEX email_events_log_idx ON email_events (tenant_id, communication_log_id);

CREATE TABLE widget_configs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants ON DELETE CASCADE,
    -- Publishable, read-only key (`wgt_` + 48 hex) embedded in customers' sites.
    api_key text NOT NULL UNIQUE CHECK (api_key ~ '^wgt_[0-9a-f]{48}$'),
    theme jsonb NOT NULL DEFAULT '{"primaryColor": "#7c3aed", "layout": "carousel"}',
    allowed_domains text[] NOT NULL DEFAULT '{}',
    max_testimonials integer NOT NULL DEFAULT 10 CHECK (max_testimonials BETWEEN 1 AND 100),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER widget_configs_updated_at BEFORE UPDATE ON widget_configs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
