-- Leads and AI intelligence (001 sections 2 and 3): lead_memory, its audit trail and
-- notes, the weekly growth_brain, feedback, performance metrics and the prompt registry.

CREATE TABLE lead_memory (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    message text NOT NULL DEFAULT '',
    ai_summary text,
    intent text,
    tone text,
    urgency text CHECK (urgency IN ('high', 'medium', 'low')),
    confidence_score numeric(3,2) CHECK (confidence_score BETWEEN 0 AND 1),
    tone_history jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tone_history) = 'array'),
    confidence_history jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(confidence_history) = 'array'),
    urgency_history jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(urgency_history) = 'array'),
    archived boolean NOT NULL DEFAULT false,
    deleted boolean NOT NULL DEFAULT false,
    current_tag text,
    language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    is_test boolean NOT NULL DEFAULT false,
    -- Set when the lead converts into a customer (links the lead to that customer's 360).
    customer_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_memory_tenant_created_idx ON lead_memory (tenant_id, created_at, id);
CREATE INDEX lead_memory_tenant_live_idx ON lead_memory (tenant_id, created_at)
    WHERE NOT deleted AND NOT archived;
CREATE INDEX lead_memory_customer_idx ON lead_memory (tenant_id, customer_id);
CREATE TRIGGER lead_memory_updated_at BEFORE UPDATE ON lead_memory
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE lead_actions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    lead_id uuid NOT NULL,
    action_type text NOT NULL CHECK (action_type IN
        ('created', 'tagged', 'archived', 'deleted', 'reactivated', 'converted', 'reverted')),
    tag text,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    conversion_outcome boolean,
    reversion_reason text,
    performed_by text,
    is_test boolean NOT NULL DEFAULT false,
    CHECK (action_type <> 'tagged' OR tag IS NOT NULL),
    CHECK (action_type <> 'reverted' OR length(reversion_reason) > 0),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES lead_memory (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_actions_lead_idx ON lead_actions (tenant_id, lead_id, "timestamp", id);

CREATE TABLE lead_notes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    lead_id uuid NOT NULL,
    note text NOT NULL CHECK (length(note) BETWEEN 1 AND 10000),
    performed_by text NOT NULL DEFAULT 'admin',
    is_test boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES lead_memory (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_notes_lead_idx ON lead_notes (tenant_id, lead_id, created_at, id);
CREATE TRIGGER lead_notes_updated_at BEFORE UPDATE ON lead_notes
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per tenant, upserted by refreshGrowthInsights and the weekly scheduler.
CREATE TABLE growth_brain (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    analysis_period_start timestamptz NOT NULL,
    analysis_period_end timestamptz NOT NULL,
    total_leads integer NOT NULL DEFAULT 0 CHECK (total_leads >= 0),
    top_intents jsonb NOT NULL DEFAULT '[]',
    urgency_distribution jsonb NOT NULL DEFAULT '{"high": 0, "medium": 0, "low": 0}',
    urgency_trend_percentage numeric(8,2),
    tone_distribution jsonb NOT NULL DEFAULT '[]',
    tone_sentiment_score numeric(5,2) CHECK (tone_sentiment_score BETWEEN 0 AND 100),
    avg_confidence numeric(4,3) CHECK (avg_confidence BETWEEN 0 AND 1),
    confidence_trajectory jsonb NOT NULL DEFAULT '[]',
    language_ratio jsonb NOT NULL DEFAULT '{"en": 0, "fr": 0}',
    engagement_score numeric(5,2) CHECK (engagement_score BETWEEN 0 AND 100),
    predictive_insights jsonb NOT NULL DEFAULT '{"en": {}, "fr": {}}',
    analyzed_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT growth_brain_client_unique UNIQUE (tenant_id),
    CHECK (analysis_period_end >= analysis_period_start)
);
CREATE TRIGGER growth_brain_updated_at BEFORE UPDATE ON growth_brain
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE feedback_tracking (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    lead_id uuid,
    action_type text NOT NULL CHECK (action_type IN
        ('lead_conversion', 'email_response', 'user_action', 'system_performance')),
    outcome text NOT NULL CHECK (outcome IN ('positive', 'negative', 'neutral')),
    confidence_score numeric(3,2) CHECK (confidence_score BETWEEN 0 AND 1),
    impact_score integer CHECK (impact_score BETWEEN -100 AND 100),
    context_data jsonb NOT NULL DEFAULT '{}',
    notes text,
    notes_en text,
    notes_fr text,
    learning_applied boolean NOT NULL DEFAULT false,
    learning_impact numeric(4,3) CHECK (learning_impact BETWEEN 0 AND 1),
    processed_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT now() + interval '1 year',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES lead_memory (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX feedback_tracking_lead_idx ON feedback_tracking (tenant_id, lead_id);
CREATE INDEX feedback_tracking_expires_idx ON feedback_tracking (tenant_id, expires_at);

CREATE TABLE performance_metrics (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    event_type text NOT NULL CHECK (event_type IN
        ('api_response', 'ai_analysis', 'translation', 'lead_processing', 'email_response')),
    metric_name text NOT NULL CHECK (metric_name IN
        ('response_time', 'accuracy', 'success_rate', 'error_rate')),
    metric_value numeric NOT NULL,
    metric_unit text NOT NULL CHECK (metric_unit IN ('ms', 'percent', 'count', 'score')),
    response_time_ms integer CHECK (response_time_ms >= 0),
    success_rate numeric(5,4) CHECK (success_rate BETWEEN 0 AND 1),
    ai_accuracy numeric(5,4) CHECK (ai_accuracy BETWEEN 0 AND 1),
    error_count integer NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    source_component text,
    metadata jsonb NOT NULL DEFAULT '{}',
    error_message_en text,
    error_message_fr text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performance_metrics_tenant_recorded_idx ON performance_metrics (tenant_id, recorded_at);

CREATE TABLE prompt_registry (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    prompt_name text NOT NULL,
    variant_version integer NOT NULL DEFAULT 1 CHECK (variant_version > 0),
    variant_id text NOT NULL,
    prompt_text text NOT NULL,
    language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    score numeric(4,3) CHECK (score BETWEEN 0 AND 1),
    usage_count integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, variant_id)
);
CREATE INDEX prompt_registry_name_idx ON prompt_registry (tenant_id, prompt_name, variant_version);
CREATE TRIGGER prompt_registry_updated_at BEFORE UPDATE ON prompt_registry
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE prompt_performance (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    prompt_registry_id uuid NOT NULL,
    execution_id text NOT NULL,
    input_data jsonb NOT NULL DEFAULT '{}',
    output_data jsonb NOT NULL DEFAULT '{}',
    output_quality_score numeric(4,3) CHECK (output_quality_score BETWEEN 0 AND 1),
    response_time_ms integer CHECK (response_time_ms >= 0),
    token_count integer CHECK (token_count >= 0),
    -- Per-call model cost: fractions of a cent, so more scale than the money columns.
    cost_usd numeric(12,6) CHECK (cost_usd >= 0),
    accuracy_score numeric(4,3) CHECK (accuracy_score BETWEEN 0 AND 1),
    consistency_score numeric(4,3) CHECK (consistency_score BETWEEN 0 AND 1),
    completeness_score numeric(4,3) CHECK (completeness_score BETWEEN 0 AND 1),
    error_occurred boolean NOT NULL DEFAULT false,
    error_message text,
    feedback_id uuid,
    user_rating integer CHECK (user_rating BETWEEN 1 AND 5),
    environment text NOT NULL DEFAULT 'production'
        CHECK (environment IN ('production', 'staging', 'test')),
    executed_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, prompt_registry_id) REFERENCES prompt_registry (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, feedback_id) REFERENCES feedback_tracking (tenant_id, id)
);
CREATE INDEX prompt_performance_prompt_idx ON prompt_performance (tenant_id, prompt_registry_id, executed_at);
CREATE INDEX prompt_performance_feedback_idx ON prompt_performance (tenant_id, feedback_id);

CREATE TABLE prompt_ab_tests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    test_name text NOT NULL,
    prompt_name text NOT NULL,
    control_variant_id uuid NOT NULL,
    treatment_variant_id uuid NOT NULL,
    control_traffic_percentage numeric(5,2) NOT NULL DEFAULT 50
        CHECK (control_traffic_percentage BETWEEN 0 AND 100),
    treatment_traffic_percentage numeric(5,2) NOT NULL DEFAULT 50
        CHECK (treatment_traffic_percentage BETWEEN 0 AND 100),
    min_sample_size integer NOT NULL DEFAULT 100 CHECK (min_sample_size > 0),
    max_duration_days integer NOT NULL DEFAULT 7 CHECK (max_duration_days > 0),
    significance_level numeric(4,3) NOT NULL DEFAULT 0.05
        CHECK (significance_level > 0 AND significance_level < 1),
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'running', 'completed', 'cancelled')),
    control_metrics jsonb NOT NULL DEFAULT '{}',
    treatment_metrics jsonb NOT NULL DEFAULT '{}',
    statistical_significance numeric(6,5),
    winner_variant_id uuid,
    started_at timestamptz,
    ended_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, test_name),
    CHECK (control_traffic_percentage + treatment_traffic_percentage = 100),
    FOREIGN KEY (tenant_id, control_variant_id) REFERENCES prompt_registry (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, treatment_variant_id) REFERENCES prompt_registry (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, winner_variant_id) REFERENCES prompt_registry (tenant_id, id)
);
CREATE INDEX prompt_ab_tests_control_idx ON prompt_ab_tests (tenant_id, control_variant_id);
CREATE INDEX prompt_ab_tests_treatment_idx ON prompt_ab_tests (tenant_id, treatment_variant_id);
CREATE INDEX prompt_ab_tests_winner_idx ON prompt_ab_tests (tenant_id, winner_variant_id);
CREATE TRIGGER prompt_ab_tests_updated_at BEFORE UPDATE ON prompt_ab_tests
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE prompt_evolution (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    parent_prompt_id uuid NOT NULL,
    child_prompt_id uuid NOT NULL,
    evolution_type text NOT NULL
        CHECK (evolution_type IN ('mutation', 'crossover', 'optimization', 'manual_edit')),
    evolution_strategy text,
    parent_performance jsonb NOT NULL DEFAULT '{}',
    child_performance jsonb NOT NULL DEFAULT '{}',
    improvement_score numeric(4,3) CHECK (improvement_score BETWEEN 0 AND 1),
    feedback_data jsonb NOT NULL DEFAULT '{}',
    optimization_goals text[] NOT NULL DEFAULT '{}',
    evolution_algorithm text,
    evolved_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_prompt_id <> child_prompt_id),
    FOREIGN KEY (tenant_id, parent_prompt_id) REFERENCES prompt_registry (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, child_prompt_id) REFERENCES prompt_registry (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX prompt_evolution_parent_idx ON prompt_evolution (tenant_id, parent_prompt_id);
CREATE INDEX prompt_evolution_child_idx ON prompt_evolution (tenant_id, child_prompt_id);
