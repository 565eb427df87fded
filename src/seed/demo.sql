-- Demo data for Domaine des Coteaux. Runs inside the tenant's unit of work:
-- current_tenant_id() is the new tenant. It runs as the server's role so row-level
-- security applies even when the caller is a superuser: every read below sees this
-- tenant's rows only.
SET LOCAL ROLE growthgraph_app;

UPDATE tenants SET last_active_at = now() WHERE id = current_tenant_id();

-- Customers (004 customers + 003 customer 360).
INSERT INTO customers (tenant_id, external_id, email, name, first_name, last_name, phone, segment,
                       churn_risk, ltv, total_deposit, total_withdraw, last_activity_at, metadata,
                       is_club_member, cumulative_days, created_at)
SELECT current_tenant_id(), 'C7-' || lpad(n::text, 4, '0'),
       lower(f) || '.' || lower(l) || n || '@example.com', f || ' ' || l, f, l,
       '+3361234' || lpad(n::text, 4, '0'),
       (ARRAY['collector', 'casual', 'club', 'corporate', 'new'])[1 + n % 5],
       (ARRAY['low', 'medium', 'high'])[1 + n % 3],
       round((150 + n * 37.5)::numeric, 2), round((n * 12.25)::numeric, 2), round((n * 1.5)::numeric, 2),
       now() - (n || ' days')::interval,
       jsonb_build_object('favouriteVarietal', (ARRAY['Syrah', 'Grenache', 'Viognier', 'Mourvèdre'])[1 + n % 4]),
       n % 2 = 0, CASE WHEN n % 2 = 0 THEN 200 + n * 10 ELSE 0 END,
       now() - ((400 - n) || ' days')::interval
FROM generate_series(1, 24) AS n,
     LATERAL (SELECT (ARRAY['Camille', 'Louis', 'Chloé', 'Hugo', 'Léa', 'Jules', 'Manon', 'Arthur'])[1 + n % 8] AS f,
                     (ARRAY['Martin', 'Bernard', 'Dubois', 'Moreau', 'Laurent', 'Simon'])[1 + n % 6] AS l) names;

INSERT INTO customer_activities (tenant_id, customer_id, activity_type, activity_description, activity_data, created_at)
SELECT c.tenant_id, c.id, t.kind, t.description, jsonb_build_object('source', 'demo'),
       now() - ((k * 3) || ' days')::interval
FROM customers c
CROSS JOIN generate_series(1, 4) AS k
CROSS JOIN LATERAL (SELECT (ARRAY['tasting_visit', 'email_opened', 'order_placed', 'club_shipment'])[k] AS kind,
                           (ARRAY['Visited the tasting room', 'Opened the harvest newsletter',
                                  'Placed an online order', 'Received the quarterly club shipment'])[k] AS description) t;

INSERT INTO products (tenant_id, crm_product_id, sku, title, wine_type, vintage, varietal, price, inventory)
VALUES
    (current_tenant_id(), 'P-1', 'DDC-SY-21', 'Coteaux Syrah 2021', 'red', 2021, 'Syrah', 32.00, 240),
    (current_tenant_id(), 'P-2', 'DDC-VI-22', 'Coteaux Viognier 2022', 'white', 2022, 'Viognier', 28.50, 180),
    (current_tenant_id(), 'P-3', 'DDC-RO-23', 'Rosé des Collines 2023', 'rose', 2023, 'Grenache', 19.90, 400),
    (current_tenant_id(), 'P-4', 'DDC-BR-19', 'Cuvée Brut 2019', 'sparkling', 2019, 'Chardonnay', 45.00, 90);

INSERT INTO orders (tenant_id, customer_id, crm_order_id, order_number, status, subtotal, discount_total,
                    order_total, is_club_shipment, line_items, ordered_at)
SELECT c.tenant_id, c.id, 'O-' || row_number() OVER (), 'DDC-' || (1000 + row_number() OVER ()), 'paid',
       64.00 + k * 10, 0, 64.00 + k * 10, k = 2,
       jsonb_build_array(jsonb_build_object('sku', 'DDC-SY-21', 'quantity', 2, 'price', '32.00')),
       now() - ((k * 40) || ' days')::interval
FROM customers c CROSS JOIN generate_series(1, 2) AS k;

INSERT INTO discounts (tenant_id, crm_discount_id, code, title, discount_type, value)
VALUES (current_tenant_id(), 'D-1', 'CLUB-BRONZE', 'Club Bronze 10%', 'percentage', 10),
       (current_tenant_id(), 'D-2', 'CLUB-SILVER', 'Club Silver 15%', 'percentage', 15),
       (current_tenant_id(), 'D-3', 'CLUB-GOLD', 'Club Gold 20%', 'percentage', 20);

-- Club program, stages, enrollments and their history.
INSERT INTO club_programs (tenant_id, name, description)
VALUES (current_tenant_id(), 'Cercle des Coteaux', 'Time-based wine club: the longer you stay, the more you save.');

-- The demo tenant has no CRM connected (`configureCrm`): nothing here was synchronised with one, and the data
-- says so (`not_configured`).
INSERT INTO club_stages (tenant_id, program_id, name, stage_order, discount_percentage, duration_months,
                         min_purchase_amount, crm_discount_id, sync_status)
SELECT current_tenant_id(), p.id, s.name, s.ord, s.pct, s.months, s.minimum, s.discount, 'not_configured'
FROM club_programs p,
     (VALUES ('Bronze', 1, 10.00, 3, 0.00, 'D-1'), ('Silver', 2, 15.00, 6, 150.00, 'D-2'),
             ('Gold', 3, 20.00, 12, 300.00, 'D-3')) AS s(name, ord, pct, months, minimum, discount);

INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, sync_status)
SELECT c.tenant_id, c.id, s.program_id, s.id, 'active', c.created_at,
       c.created_at + make_interval(months => s.duration_months) + interval '365 days', 'not_configured'
FROM customers c
JOIN club_stages s ON s.stage_order = 1 + (substr(c.external_id, 4)::int % 3)
WHERE c.is_club_member;

INSERT INTO club_extensions (tenant_id, enrollment_id, extension_type, to_stage_id, new_expires_at)
SELECT tenant_id, id, 'enrolled', stage_id, expires_at FROM club_enrollments;

INSERT INTO loyalty_point_rules (tenant_id, points_per_dollar, bonus_percentage, min_membership_days, point_dollar_value)
VALUES (current_tenant_id(), 1.00, 10.00, 365, 0.01);

INSERT INTO loyalty_rewards (tenant_id, name, description, reward_type, points_cost, inventory, available_from, available_until)
VALUES
    (current_tenant_id(), 'Estate tote bag', 'Canvas tote with the Domaine crest', 'merchandise', 150, 50, NULL, NULL),
    (current_tenant_id(), 'Harvest dinner', 'A seat at the September harvest dinner', 'event', 800, 12,
     now() - interval '30 days', now() + interval '120 days'),
    (current_tenant_id(), 'Private cellar tasting', 'Guided tasting of library vintages for two', 'tasting', 500, NULL, NULL, NULL),
    (current_tenant_id(), 'Syrah 2021 at points price', 'One bottle of Coteaux Syrah 2021', 'wine_point_sale', 300, 40, NULL, NULL);

-- Points ledger: earned on orders, one redemption each for a few members.
INSERT INTO point_transactions (tenant_id, customer_id, sequence, transaction_type, points, balance_after, order_id, description, created_at)
SELECT o.tenant_id, o.customer_id, row_number() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.id),
       'earned', floor(o.order_total)::bigint,
       sum(floor(o.order_total)::bigint) OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.id),
       o.id, 'Points for order ' || o.order_number, o.ordered_at
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE c.is_club_member
ORDER BY o.customer_id, o.ordered_at, o.id;

UPDATE customers c SET
    points_balance = coalesce((SELECT sum(points) FROM point_transactions p WHERE p.customer_id = c.id), 0),
    points_lifetime = coalesce((SELECT sum(points) FROM point_transactions p WHERE p.customer_id = c.id), 0);

INSERT INTO reward_redemptions (tenant_id, customer_id, reward_id, quantity, points_spent, status, fulfilled_at)
SELECT c.tenant_id, c.id, r.id, 1, r.points_cost,
       CASE WHEN substr(c.external_id, 4)::int % 4 = 0 THEN 'fulfilled' ELSE 'pending' END,
       CASE WHEN substr(c.external_id, 4)::int % 4 = 0 THEN now() END
FROM customers c JOIN loyalty_rewards r ON r.name = 'Estate tote bag'
WHERE c.is_club_member AND substr(c.external_id, 4)::int > 12;

UPDATE loyalty_rewards r SET inventory = inventory - (SELECT count(*) FROM reward_redemptions rr WHERE rr.reward_id = r.id)
WHERE r.name = 'Estate tote bag';

UPDATE customers c SET points_balance = c.points_balance - rr.points_spent
FROM reward_redemptions rr WHERE rr.customer_id = c.id;

INSERT INTO point_transactions (tenant_id, customer_id, sequence, transaction_type, points, balance_after, reward_id, redemption_id, description)
SELECT rr.tenant_id, rr.customer_id, (SELECT max(sequence) + 1 FROM point_transactions p WHERE p.customer_id = rr.customer_id),
       'redeemed', -rr.points_spent,
       (SELECT sum(points) FROM point_transactions p WHERE p.customer_id = rr.customer_id) - rr.points_spent,
       rr.reward_id, rr.id, 'Redeemed ' || r.name
FROM reward_redemptions rr JOIN loyalty_rewards r ON r.id = rr.reward_id;

-- Communications: channels, templates, preferences, log, calls, appointments, prospects, tickets.
INSERT INTO channel_configurations (tenant_id, channel_type, provider, enabled, configured, config_public, assistant_id, from_address, from_name)
VALUES
    (current_tenant_id(), 'phone', 'vapi', true, true, '{"clientPhoneNumber": "+33987654321", "sara": {"voice": "female"}}', 'vapi_assistant_demo_123', NULL, NULL),
    (current_tenant_id(), 'sms', 'twilio', true, true, '{"senderId": "COTEAUX"}', NULL, '+33939035761', NULL),
    (current_tenant_id(), 'email', 'sendgrid', true, true, '{}', NULL, 'cave@domaine-des-coteaux.example', 'Domaine des Coteaux'),
    (current_tenant_id(), 'whatsapp', 'whatsapp_business', false, false, '{}', NULL, NULL, NULL);

INSERT INTO communication_templates (tenant_id, template_type, channel, name, subject, html_content, text_content, variables)
VALUES
    (current_tenant_id(), 'monthly_status', 'email', 'Monthly club status', 'Your Cercle des Coteaux status',
     '<p>Bonjour {{first_name}}, you are {{stage}} until {{expires_at}}.</p>',
     'Bonjour {{first_name}}, you are {{stage}} until {{expires_at}}.', '["first_name", "stage", "expires_at"]'),
    (current_tenant_id(), 'expiration_warning', 'sms', 'Expiry warning', NULL, NULL,
     'Your {{stage}} membership ends on {{expires_at}}. Reply STOP to opt out.', '["stage", "expires_at"]');

INSERT INTO communication_preferences (tenant_id, customer_id, channel, communication_type, opted_in, unsubscribed_at, unsubscribe_reason)
SELECT c.tenant_id, c.id, ch.channel, 'marketing', NOT (substr(c.external_id, 4)::int % 7 = 0 AND ch.channel = 'sms'),
       CASE WHEN substr(c.external_id, 4)::int % 7 = 0 AND ch.channel = 'sms' THEN now() - interval '10 days' END,
       CASE WHEN substr(c.external_id, 4)::int % 7 = 0 AND ch.channel = 'sms' THEN 'too many messages' END
FROM customers c CROSS JOIN (VALUES ('email'), ('sms')) AS ch(channel);

INSERT INTO communication_log (tenant_id, customer_id, template_id, channel, provider, recipient, subject, content, status, sent_at, delivered_at, opened_at)
SELECT c.tenant_id, c.id, t.id, 'email', 'sendgrid', c.email, t.subject, t.text_content,
       (ARRAY['sent', 'delivered', 'opened'])[1 + substr(c.external_id, 4)::int % 3],
       now() - interval '3 days',
       CASE WHEN substr(c.external_id, 4)::int % 3 >= 1 THEN now() - interval '3 days' END,
       CASE WHEN substr(c.external_id, 4)::int % 3 = 2 THEN now() - interval '2 days' END
FROM customers c JOIN communication_templates t ON t.template_type = 'monthly_status'
WHERE c.is_club_member;

INSERT INTO call_logs (tenant_id, customer_id, provider, provider_call_id, direction, agent_type, from_number, to_number, status, duration_seconds, summary, started_at, ended_at)
SELECT c.tenant_id, c.id, 'vapi', 'call_demo_' || k, 'inbound', (ARRAY['appointment', 'qualification', 'support'])[k],
       c.phone, '+33987654321', 'completed', 120 + k * 45,
       (ARRAY['Booked a tasting for Saturday', 'Asked about corporate gifting', 'Reported a damaged bottle'])[k],
       now() - ((k * 2) || ' days')::interval, now() - ((k * 2) || ' days')::interval + interval '4 minutes'
FROM generate_series(1, 3) AS k
JOIN customers c ON c.external_id = 'C7-' || lpad(k::text, 4, '0');

INSERT INTO rendez_vous (tenant_id, customer_id, call_id, client_name, client_phone, client_email, rdv_date, rdv_time, duration_minutes, service_type, status)
SELECT cl.tenant_id, cl.customer_id, cl.id, c.name, c.phone, c.email, current_date + 1, '15:00', 60, 'Guided tasting', 'confirmed'
FROM call_logs cl JOIN customers c ON c.id = cl.customer_id WHERE cl.agent_type = 'appointment';
INSERT INTO rendez_vous (tenant_id, client_name, client_phone, rdv_date, rdv_time, service_type, status)
VALUES (current_tenant_id(), 'Élise Fournier', '+33611223344', current_date + 5, '11:30', 'Cellar visit', 'pending');

INSERT INTO prospects (tenant_id, call_id, name, phone, email, company, need, budget, timeline, qualification_score, status, source)
SELECT cl.tenant_id, cl.id, 'Atelier Gourmand', cl.from_number, 'events@atelier-gourmand.example', 'Atelier Gourmand',
       '120 bottles for year-end corporate gifts', '3000-5000 EUR', 'December', 82, 'qualified', 'phone'
FROM call_logs cl WHERE cl.agent_type = 'qualification';

INSERT INTO tickets (tenant_id, customer_id, call_id, ticket_number, subject, description, category, channel, priority, status, customer_name, customer_email)
SELECT cl.tenant_id, cl.customer_id, cl.id, 'TCK-0001', 'Damaged bottle in club shipment',
       'One bottle of Syrah arrived broken; customer asks for a replacement.', 'shipping', 'phone', 'high', 'open', c.name, c.email
FROM call_logs cl JOIN customers c ON c.id = cl.customer_id WHERE cl.agent_type = 'support';

-- Campaigns (003) with recipients in every delivery state.
INSERT INTO target_group_mappings (tenant_id, crm_name, postgres_table, filter, description)
VALUES (current_tenant_id(), 'Club members', 'customers', '{"isClubMember": true}', 'Everyone with an active club enrollment');

INSERT INTO campaigns (tenant_id, name, description, status, channel, workflow_data, target_group_id, scheduled_at, started_at)
SELECT current_tenant_id(), 'Harvest 2026 pre-sale', 'Early access to the 2026 harvest for club members', 'active', 'email',
       '{"nodes": [{"id": "start", "type": "trigger", "data": {"label": "Club members"}},
                   {"id": "mail", "type": "email", "data": {"template": "harvest_presale"}},
                   {"id": "wait", "type": "delay", "data": {"days": 3}},
                   {"id": "sms", "type": "sms", "data": {"text": "Last days for the pre-sale"}}],
         "edges": [{"id": "e1", "source": "start", "target": "mail"},
                   {"id": "e2", "source": "mail", "target": "wait"},
                   {"id": "e3", "source": "wait", "target": "sms"}]}',
       g.id, now() - interval '7 days', now() - interval '7 days'
FROM target_group_mappings g;
INSERT INTO campaigns (tenant_id, name, description, status, channel, target_segment)
VALUES (current_tenant_id(), 'Winter reactivation', 'Win back lapsed casual buyers', 'draft', 'email', 'casual');

INSERT INTO campaign_executions (tenant_id, campaign_id, execution_type, status, execution_data, started_at)
SELECT tenant_id, id, 'manual', 'running', '{"source": "target_group"}', started_at FROM campaigns WHERE status = 'active';

INSERT INTO campaign_recipients (tenant_id, campaign_id, execution_id, customer_id, email, channel, status,
                                 sent_at, delivered_at, opened_at, clicked_at, failed_at, error_message)
SELECT c.tenant_id, e.campaign_id, e.id, c.id, c.email, 'email', s.status,
       CASE WHEN s.status IN ('sent', 'delivered', 'opened', 'clicked') THEN now() - interval '6 days' END,
       CASE WHEN s.status IN ('delivered', 'opened', 'clicked') THEN now() - interval '6 days' END,
       CASE WHEN s.status IN ('opened', 'clicked') THEN now() - interval '5 days' END,
       CASE WHEN s.status = 'clicked' THEN now() - interval '5 days' END,
       CASE WHEN s.status = 'failed' THEN now() - interval '6 days' END,
       CASE WHEN s.status = 'failed' THEN 'mailbox unavailable' END
FROM customers c
CROSS JOIN campaign_executions e
CROSS JOIN LATERAL (SELECT (ARRAY['pending', 'sent', 'delivered', 'opened', 'clicked', 'failed'])[1 + substr(c.external_id, 4)::int % 6] AS status) s
WHERE c.is_club_member;

INSERT INTO campaign_delivery_counters (tenant_id, campaign_id, recipients, sent, delivered, opened, clicked, failed)
SELECT c.tenant_id, c.id, count(r.id), count(r.sent_at), count(r.delivered_at), count(r.opened_at),
       count(r.clicked_at), count(r.id) FILTER (WHERE r.status = 'failed')
FROM campaigns c LEFT JOIN campaign_recipients r ON r.campaign_id = c.id
GROUP BY c.tenant_id, c.id;

-- Leads (001) with AI fields, history and their audit trail.
INSERT INTO lead_memory (tenant_id, name, email, message, ai_summary, intent, tone, urgency, confidence_score,
                         tone_history, confidence_history, urgency_history, current_tag, language, archived, created_at)
SELECT current_tenant_id(), l.name, l.email, l.message, l.summary, l.intent, l.tone, l.urgency, l.confidence,
       jsonb_build_array(jsonb_build_object('value', l.tone, 'at', now() - (l.age || ' days')::interval)),
       jsonb_build_array(jsonb_build_object('value', l.confidence, 'at', now() - (l.age || ' days')::interval)),
       jsonb_build_array(jsonb_build_object('value', l.urgency, 'at', now() - (l.age || ' days')::interval)),
       l.tag, l.language, l.archived, now() - (l.age || ' days')::interval
FROM (VALUES
    ('Sophie Garnier', 'sophie@bistrot-garnier.example', 'Nous cherchons un vin rouge pour notre carte, 20 caisses par mois.',
     'Restaurant wants a monthly red wine supply.', 'B2B partnership', 'Professional', 'high', 0.92, 'Hot Lead', 'fr', false, 2),
    ('Mark Ellis', 'mark@ellis-events.example', 'Planning a wedding for 150 guests next June, need sparkling and rosé.',
     'Wedding planner, 150 guests, June.', 'Event supply', 'Friendly', 'medium', 0.81, 'Follow Up', 'en', false, 4),
    ('Julie Perrin', 'julie.perrin@example.com', 'Can I join the wine club as a gift for my father?',
     'Gift club membership enquiry.', 'Club membership', 'Friendly', 'low', 0.74, NULL, 'fr', false, 6),
    ('Tom Baker', 'tom@bakers-deli.example', 'Wholesale prices for your Viognier?',
     'Deli asks for wholesale pricing.', 'B2B partnership', 'Formal', 'medium', 0.88, 'Converted', 'en', false, 9),
    ('Nadia Haddad', 'nadia@example.com', 'Do you ship to Belgium?',
     'Shipping question.', 'Shipping enquiry', 'Professional', 'low', 0.66, NULL, 'en', true, 15)
) AS l(name, email, message, summary, intent, tone, urgency, confidence, tag, language, archived, age);

INSERT INTO lead_actions (tenant_id, lead_id, action_type, "timestamp", performed_by)
SELECT tenant_id, id, 'created', created_at, 'system' FROM lead_memory;
INSERT INTO lead_actions (tenant_id, lead_id, action_type, tag, "timestamp", performed_by)
SELECT tenant_id, id, 'tagged', current_tag, created_at + interval '1 hour', 'admin' FROM lead_memory WHERE current_tag IS NOT NULL;
INSERT INTO lead_actions (tenant_id, lead_id, action_type, conversion_outcome, "timestamp", performed_by)
SELECT tenant_id, id, 'converted', true, created_at + interval '2 days', 'admin' FROM lead_memory WHERE current_tag = 'Converted';
INSERT INTO lead_actions (tenant_id, lead_id, action_type, "timestamp", performed_by)
SELECT tenant_id, id, 'archived', created_at + interval '3 days', 'admin' FROM lead_memory WHERE archived;

INSERT INTO lead_notes (tenant_id, lead_id, note, performed_by)
SELECT tenant_id, id, 'Called back, sending the trade price list.', 'admin' FROM lead_memory WHERE intent = 'B2B partnership';

INSERT INTO feedback_tracking (tenant_id, lead_id, action_type, outcome, confidence_score, impact_score, context_data, notes_en, notes_fr)
SELECT tenant_id, id, 'lead_conversion', 'positive', confidence_score, 40, jsonb_build_object('predictedIntent', intent),
       'Predicted B2B intent converted.', 'L''intention B2B prédite a converti.'
FROM lead_memory WHERE current_tag = 'Converted';

INSERT INTO growth_brain (tenant_id, analysis_period_start, analysis_period_end, total_leads, top_intents, urgency_distribution,
                          urgency_trend_percentage, tone_distribution, tone_sentiment_score, avg_confidence, confidence_trajectory,
                          language_ratio, engagement_score, predictive_insights)
VALUES (current_tenant_id(), now() - interval '30 days', now(), 4,
        '[{"intent": "B2B partnership", "count": 2, "share": 0.5}, {"intent": "Event supply", "count": 1, "share": 0.25}, {"intent": "Club membership", "count": 1, "share": 0.25}]',
        '{"high": 1, "medium": 2, "low": 1}', 0,
        '[{"tone": "Friendly", "count": 2, "share": 0.5}, {"tone": "Professional", "count": 1, "share": 0.25}, {"tone": "Formal", "count": 1, "share": 0.25}]',
        50, 0.838, '[]', '{"en": 0.5, "fr": 0.5}', 62,
        '{"en": {"summary": "B2B demand leads the pipeline."}, "fr": {"summary": "La demande B2B mène le pipeline."}}');

INSERT INTO performance_metrics (tenant_id, event_type, metric_name, metric_value, metric_unit, response_time_ms, source_component)
VALUES (current_tenant_id(), 'ai_analysis', 'response_time', 842, 'ms', 842, 'intelligence_engine'),
       (current_tenant_id(), 'lead_processing', 'success_rate', 99.2, 'percent', NULL, 'lead_api');

INSERT INTO prompt_registry (tenant_id, prompt_name, variant_version, variant_id, prompt_text, language, score, usage_count)
VALUES (current_tenant_id(), 'lead_analysis', 1, 'lead_analysis_v1', 'Classify the intent, tone and urgency of this enquiry.', 'en', 0.81, 320),
       (current_tenant_id(), 'lead_analysis', 2, 'lead_analysis_v2', 'You are a winery sales assistant. Classify intent, tone, urgency.', 'en', 0.86, 140);
INSERT INTO prompt_ab_tests (tenant_id, test_name, prompt_name, control_variant_id, treatment_variant_id, status, started_at)
SELECT current_tenant_id(), 'lead_analysis v1 vs v2', 'lead_analysis', a.id, b.id, 'running', now() - interval '3 days'
FROM prompt_registry a, prompt_registry b WHERE a.variant_id = 'lead_analysis_v1' AND b.variant_id = 'lead_analysis_v2';
INSERT INTO prompt_evolution (tenant_id, parent_prompt_id, child_prompt_id, evolution_type, evolution_strategy, improvement_score, optimization_goals)
SELECT current_tenant_id(), a.id, b.id, 'manual_edit', 'add persona', 0.05, '{accuracy}'
FROM prompt_registry a, prompt_registry b WHERE a.variant_id = 'lead_analysis_v1' AND b.variant_id = 'lead_analysis_v2';
INSERT INTO prompt_performance (tenant_id, prompt_registry_id, execution_id, output_quality_score, response_time_ms, token_count, cost_usd, environment)
SELECT current_tenant_id(), id, 'exec-' || variant_id, score, 900, 512, 0.001024, 'production' FROM prompt_registry;

-- Prospect discovery and outreach (001 sections 4 and 5).
INSERT INTO prospect_candidates (tenant_id, business_name, website, contact_email, industry, region, language, automation_need_score, contacted)
VALUES (current_tenant_id(), 'Cave à Manger Lyon', 'cave-lyon.example', 'hello@cave-lyon.example', 'restaurant', 'Auvergne-Rhône-Alpes', 'fr', 78, true),
       (current_tenant_id(), 'Hotel du Lac', 'hotel-du-lac.example', 'events@hotel-du-lac.example', 'hospitality', 'Savoie', 'fr', 64, true),
       (current_tenant_id(), 'Boston Wine Bar', 'bostonwinebar.example', NULL, 'restaurant', 'Massachusetts', 'en', 55, false);
INSERT INTO prospect_form_tests (tenant_id, prospect_id, response_received_at, response_time_minutes, has_autoresponder, autoresponder_tone, score, test_status)
SELECT tenant_id, id, now() - interval '1 day', 95, true, 'robotic', 40, 'completed' FROM prospect_candidates WHERE contacted;
INSERT INTO prospect_industry_performance (tenant_id, industry, total_contacted, total_opened, total_replied, open_rate, reply_rate, priority_score)
VALUES (current_tenant_id(), 'restaurant', 1, 1, 1, 1.0, 1.0, 80), (current_tenant_id(), 'hospitality', 1, 1, 0, 1.0, 0, 60);
INSERT INTO email_templates (tenant_id, name, description, subject, html_content, plain_content, language, category, variables)
VALUES (current_tenant_id(), 'Trade introduction', 'First contact with restaurants', 'Des vins de coteaux pour {{company}}',
        '<p>Bonjour {{name}}, ...</p>', 'Bonjour {{name}}, ...', 'fr', 'introduction', '["name", "company"]');
INSERT INTO outreach_campaigns (tenant_id, name, status, target_criteria, email_template_id, follow_up_schedule)
SELECT current_tenant_id(), 'Restaurants Rhône-Alpes', 'active', '{"industry": "restaurant"}', id, '[{"afterDays": 4}, {"afterDays": 10}]'
FROM email_templates;
INSERT INTO outreach_emails (tenant_id, campaign_id, prospect_id, prospect_email, prospect_name, company_name, website, template_id,
                             subject, content, status, sent_at, opened_at, replied_at, sender_email)
SELECT p.tenant_id, c.id, p.id, p.contact_email, 'Responsable', p.business_name, p.website, c.email_template_id,
       'Des vins de coteaux pour ' || p.business_name, 'Bonjour ...',
       CASE WHEN p.industry = 'restaurant' THEN 'replied' ELSE 'opened' END,
       now() - interval '5 days', now() - interval '4 days',
       CASE WHEN p.industry = 'restaurant' THEN now() - interval '3 days' END, 'cave@domaine-des-coteaux.example'
FROM prospect_candidates p CROSS JOIN outreach_campaigns c WHERE p.contacted;
INSERT INTO outreach_tracking (tenant_id, email_id, prospect_id, campaign_id, action, "timestamp")
SELECT e.tenant_id, e.id, e.prospect_id, e.campaign_id, a.action, e.sent_at
FROM outreach_emails e CROSS JOIN (VALUES ('sent'), ('delivered'), ('opened')) AS a(action);
INSERT INTO outreach_tracking (tenant_id, email_id, prospect_id, campaign_id, action, "timestamp")
SELECT tenant_id, id, prospect_id, campaign_id, 'replied', replied_at FROM outreach_emails WHERE status = 'replied';
UPDATE outreach_emails e SET funnel_counted = ARRAY(
    SELECT DISTINCT t.action FROM outreach_tracking t WHERE t.tenant_id = e.tenant_id AND t.email_id = e.id ORDER BY 1);
INSERT INTO prospect_outreach_log (tenant_id, prospect_id, email_id, subject, email_body, status, sent_at, opened_at, replied_at)
SELECT tenant_id, prospect_id, id, subject, content, CASE WHEN status = 'replied' THEN 'replied' ELSE 'opened' END, sent_at, opened_at, replied_at
FROM outreach_emails;
INSERT INTO outreach_metrics (tenant_id, campaign_id, total_emails_sent, total_emails_delivered, total_emails_opened, total_emails_replied,
                              open_rate, reply_rate)
SELECT tenant_id, id, 2, 2, 2, 1, 1.0, 0.5 FROM outreach_campaigns;

INSERT INTO translation_cache (tenant_id, source_text, source_language, target_language, translated_text, context_type, quality_score)
VALUES (current_tenant_id(), 'B2B partnership', 'en', 'fr', 'Partenariat B2B', 'intent', 0.98);
INSERT INTO integration_logs (tenant_id, api_key, endpoint, method, request_body, response_status, ip_address, user_agent)
VALUES (current_tenant_id(), 'gg_partner_3f9a', '/graphql', 'POST', '{"operationName": "IngestLead"}', 200, '203.0.113.7', 'webform/1.0');

-- Growth automations (000): contacts, testimonials, the widget, demo sessions, sequences.
INSERT INTO contacts (tenant_id, customer_id, name, email, company, job_title, linkedin_consent, linkedin_consent_at)
SELECT c.tenant_id, c.id, c.name, c.email, NULL, NULL, substr(c.external_id, 4)::int % 2 = 0,
       CASE WHEN substr(c.external_id, 4)::int % 2 = 0 THEN now() - interval '20 days' END
FROM customers c WHERE substr(c.external_id, 4)::int <= 4;
INSERT INTO testimonials (tenant_id, contact_id, content, rating, status, published_at)
SELECT tenant_id, id,
       'The club shipments are the highlight of my season. The Syrah is outstanding.', 5,
       CASE WHEN linkedin_consent THEN 'published' ELSE 'pending_review' END,
       CASE WHEN linkedin_consent THEN now() - interval '15 days' END
FROM contacts;
INSERT INTO widget_configs (tenant_id, api_key, theme, allowed_domains)
VALUES (current_tenant_id(), 'wgt_' || encode(sha256(gen_random_uuid()::text::bytea), 'hex')::char(48),
        '{"primaryColor": "#7b1e3a", "layout": "carousel", "showRatings": true}', '{domaine-des-coteaux.example}');
INSERT INTO demo_sessions (tenant_id, session_token, visitor_email, ip_hash, share_count, converted)
VALUES (current_tenant_id(), encode(sha256(gen_random_uuid()::text::bytea), 'hex'), 'curious@visitor.example',
        encode(sha256('198.51.100.23'::bytea), 'hex'), 2, false);
INSERT INTO email_sequences (tenant_id, contact_id, recipient_email, segment, status, current_step, next_send_at)
SELECT tenant_id, id, email, 'collector_unused', 'active', 1, now() + interval '2 days' FROM contacts WHERE NOT linkedin_consent;
INSERT INTO email_events (tenant_id, sequence_id, recipient_email, email_type, template, status)
SELECT tenant_id, id, recipient_email, 'sequence', 'collector_unused_step_1', 'opened' FROM email_sequences;
