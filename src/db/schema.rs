// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        role -> Text,
        key_hash -> Bytea,
        key_prefix -> Text,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    avenir_profile_embeddings (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        chunk_text -> Text,
        embedding -> Array<Nullable<Float4>>,
        embedding_model -> Text,
        metadata -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    call_logs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        provider -> Text,
        provider_call_id -> Nullable<Text>,
        direction -> Text,
        agent_type -> Nullable<Text>,
        from_number -> Nullable<Text>,
        to_number -> Nullable<Text>,
        status -> Text,
        duration_seconds -> Nullable<Int4>,
        recording_url -> Nullable<Text>,
        transcript -> Nullable<Text>,
        summary -> Nullable<Text>,
        metadata -> Jsonb,
        started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    campaign_delivery_counters (tenant_id, campaign_id) {
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        recipients -> Int8,
        sent -> Int8,
        delivered -> Int8,
        opened -> Int8,
        clicked -> Int8,
        failed -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    campaign_executions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        execution_type -> Text,
        status -> Text,
        execution_data -> Jsonb,
        metrics -> Jsonb,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    campaign_recipients (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        execution_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        channel -> Text,
        status -> Text,
        sent_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        opened_at -> Nullable<Timestamptz>,
        clicked_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    campaign_runs (tenant_id, recipient_id) {
        tenant_id -> Uuid,
        recipient_id -> Uuid,
        campaign_id -> Uuid,
        execution_id -> Uuid,
        node_id -> Text,
        status -> Text,
        waited -> Bool,
        due_at -> Nullable<Timestamptz>,
        path -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        status -> Text,
        channel -> Text,
        workflow_data -> Jsonb,
        target_group_id -> Nullable<Uuid>,
        target_segment -> Nullable<Text>,
        created_by -> Nullable<Uuid>,
        scheduled_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    channel_configurations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        channel_type -> Text,
        provider -> Text,
        enabled -> Bool,
        configured -> Bool,
        config_encrypted -> Nullable<Bytea>,
        config_public -> Jsonb,
        assistant_id -> Nullable<Text>,
        from_address -> Nullable<Text>,
        from_name -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        hook_token_hash -> Nullable<Bytea>,
        hook_token_sealed -> Nullable<Bytea>,
    }
}

diesel::table! {
    club_enrollments (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        program_id -> Uuid,
        stage_id -> Uuid,
        status -> Text,
        enrolled_at -> Timestamptz,
        expires_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        qualifying_order_id -> Nullable<Uuid>,
        sync_status -> Text,
        last_synced_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    club_extensions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        enrollment_id -> Uuid,
        extension_type -> Text,
        from_stage_id -> Nullable<Uuid>,
        to_stage_id -> Nullable<Uuid>,
        previous_expires_at -> Nullable<Timestamptz>,
        new_expires_at -> Nullable<Timestamptz>,
        qualifying_order_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    club_programs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        expiration_warning_days -> Int4,
    }
}

diesel::table! {
    club_stages (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        program_id -> Uuid,
        name -> Text,
        stage_order -> Int4,
        discount_percentage -> Numeric,
        duration_months -> Int4,
        min_purchase_amount -> Numeric,
        crm_discount_id -> Nullable<Text>,
        sync_status -> Text,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    communication_log (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        template_id -> Nullable<Uuid>,
        channel -> Text,
        direction -> Text,
        provider -> Nullable<Text>,
        recipient -> Text,
        subject -> Nullable<Text>,
        content -> Nullable<Text>,
        status -> Text,
        provider_message_id -> Nullable<Text>,
        error_message -> Nullable<Text>,
        metadata -> Jsonb,
        sent_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        opened_at -> Nullable<Timestamptz>,
        clicked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        communication_type -> Text,
        html_content -> Nullable<Text>,
        email_template_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        attempts -> Int4,
        sending_started_at -> Nullable<Timestamptz>,
        channel_configuration_id -> Nullable<Uuid>,
        campaign_recipient_id -> Nullable<Uuid>,
        outreach_email_id -> Nullable<Uuid>,
        email_sequence_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    communication_preferences (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        channel -> Text,
        communication_type -> Text,
        opted_in -> Bool,
        unsubscribed_at -> Nullable<Timestamptz>,
        unsubscribe_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    communication_templates (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        template_type -> Text,
        channel -> Text,
        name -> Text,
        subject -> Nullable<Text>,
        html_content -> Nullable<Text>,
        text_content -> Text,
        variables -> Jsonb,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    contacts (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        name -> Text,
        email -> Nullable<Text>,
        company -> Nullable<Text>,
        job_title -> Nullable<Text>,
        linkedin_url -> Nullable<Text>,
        linkedin_consent -> Bool,
        linkedin_consent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    crm_connections (tenant_id) {
        tenant_id -> Uuid,
        provider -> Text,
        shop -> Text,
        credentials_sealed -> Bytea,
        hook_token_hash -> Bytea,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    crm_webhook_receipts (tenant_id, provider, delivery_id) {
        tenant_id -> Uuid,
        provider -> Text,
        delivery_id -> Text,
        topic -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    customer_activities (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        activity_type -> Text,
        activity_description -> Nullable<Text>,
        activity_data -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    customer_rollups (id) {
        id -> Int8,
        tenant_id -> Uuid,
        segment -> Nullable<Text>,
        churn_risk -> Nullable<Text>,
        is_club_member -> Bool,
        n -> Int8,
        ltv -> Numeric,
        compacted -> Bool,
    }
}

diesel::table! {
    customers (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        external_id -> Nullable<Text>,
        crm_customer_id -> Nullable<Text>,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        phone -> Nullable<Text>,
        segment -> Nullable<Text>,
        churn_risk -> Nullable<Text>,
        ltv -> Numeric,
        total_deposit -> Numeric,
        total_withdraw -> Numeric,
        last_activity_at -> Nullable<Timestamptz>,
        metadata -> Jsonb,
        is_club_member -> Bool,
        points_balance -> Int8,
        points_lifetime -> Int8,
        cumulative_days -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    demo_sessions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        session_token -> Text,
        visitor_email -> Nullable<Text>,
        ip_hash -> Nullable<Text>,
        video_url -> Nullable<Text>,
        share_count -> Int4,
        converted -> Bool,
        converted_at -> Nullable<Timestamptz>,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    discounts (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        crm_discount_id -> Nullable<Text>,
        code -> Text,
        title -> Nullable<Text>,
        discount_type -> Text,
        value -> Numeric,
        starts_at -> Nullable<Timestamptz>,
        ends_at -> Nullable<Timestamptz>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    domain_events (id) {
        id -> Int8,
        tenant_id -> Uuid,
        event_type -> Text,
        subject_id -> Uuid,
        payload -> Jsonb,
        occurred_at -> Timestamptz,
        position -> Nullable<Int8>,
    }
}

diesel::table! {
    email_events (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        sequence_id -> Nullable<Uuid>,
        communication_log_id -> Nullable<Uuid>,
        recipient_email -> Text,
        email_type -> Text,
        template -> Nullable<Text>,
        status -> Text,
        provider_message_id -> Nullable<Text>,
        metadata -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    email_sequence_steps (tenant_id, segment, step_number) {
        tenant_id -> Uuid,
        segment -> Text,
        step_number -> Int4,
        delay_hours -> Int4,
        email_template_id -> Uuid,
    }
}

diesel::table! {
    email_sequences (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        contact_id -> Nullable<Uuid>,
        recipient_email -> Text,
        segment -> Text,
        status -> Text,
        current_step -> Int4,
        next_send_at -> Nullable<Timestamptz>,
        metadata -> Jsonb,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_templates (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        subject -> Text,
        html_content -> Text,
        plain_content -> Nullable<Text>,
        language -> Text,
        category -> Nullable<Text>,
        variables -> Jsonb,
        is_active -> Bool,
        usage_count -> Int4,
        performance_score -> Nullable<Numeric>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    feedback_tracking (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        lead_id -> Nullable<Uuid>,
        action_type -> Text,
        outcome -> Text,
        confidence_score -> Nullable<Numeric>,
        impact_score -> Nullable<Int4>,
        context_data -> Jsonb,
        notes -> Nullable<Text>,
        notes_en -> Nullable<Text>,
        notes_fr -> Nullable<Text>,
        learning_applied -> Bool,
        learning_impact -> Nullable<Numeric>,
        processed_at -> Nullable<Timestamptz>,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    growth_brain (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        analysis_period_start -> Timestamptz,
        analysis_period_end -> Timestamptz,
        total_leads -> Int4,
        top_intents -> Jsonb,
        urgency_distribution -> Jsonb,
        urgency_trend_percentage -> Nullable<Numeric>,
        tone_distribution -> Jsonb,
        tone_sentiment_score -> Nullable<Numeric>,
        avg_confidence -> Nullable<Numeric>,
        confidence_trajectory -> Jsonb,
        language_ratio -> Jsonb,
        engagement_score -> Nullable<Numeric>,
        predictive_insights -> Jsonb,
        analyzed_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, idempotency_key) {
        tenant_id -> Uuid,
        idempotency_key -> Text,
        operation -> Text,
        request_hash -> Bytea,
        response -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    integration_logs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        api_key -> Nullable<Text>,
        endpoint -> Text,
        method -> Text,
        request_body -> Nullable<Jsonb>,
        response_status -> Nullable<Int4>,
        response_body -> Nullable<Jsonb>,
        ip_address -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
        ip_hash -> Nullable<Text>,
    }
}

diesel::table! {
    intent_translations (id) {
        id -> Uuid,
        intent_en -> Text,
        intent_fr -> Text,
        category -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    lead_actions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        lead_id -> Uuid,
        action_type -> Text,
        tag -> Nullable<Text>,
        timestamp -> Timestamptz,
        conversion_outcome -> Nullable<Bool>,
        reversion_reason -> Nullable<Text>,
        performed_by -> Nullable<Text>,
        is_test -> Bool,
    }
}

diesel::table! {
    lead_memory (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        email -> Text,
        message -> Text,
        ai_summary -> Nullable<Text>,
        intent -> Nullable<Text>,
        tone -> Nullable<Text>,
        urgency -> Nullable<Text>,
        confidence_score -> Nullable<Numeric>,
        tone_history -> Jsonb,
        confidence_history -> Jsonb,
        urgency_history -> Jsonb,
        archived -> Bool,
        deleted -> Bool,
        current_tag -> Nullable<Text>,
        language -> Text,
        is_test -> Bool,
        customer_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    lead_notes (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        lead_id -> Uuid,
        note -> Text,
        performed_by -> Text,
        is_test -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    loyalty_point_rules (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        points_per_dollar -> Numeric,
        bonus_percentage -> Numeric,
        min_membership_days -> Int4,
        point_dollar_value -> Numeric,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    loyalty_rewards (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        reward_type -> Text,
        points_cost -> Int4,
        inventory -> Nullable<Int4>,
        available_from -> Nullable<Timestamptz>,
        available_until -> Nullable<Timestamptz>,
        product_id -> Nullable<Uuid>,
        sale_details -> Jsonb,
        image_url -> Nullable<Text>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_refunds (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        order_id -> Uuid,
        amount -> Numeric,
        points_reversed -> Int8,
        points_shortfall -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    order_rollups (id) {
        id -> Int8,
        tenant_id -> Uuid,
        bucket -> Timestamptz,
        status -> Text,
        is_club_shipment -> Bool,
        n -> Int8,
        order_total -> Numeric,
        subtotal -> Numeric,
        discount_total -> Numeric,
        compacted -> Bool,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        crm_order_id -> Nullable<Text>,
        order_number -> Nullable<Text>,
        status -> Text,
        subtotal -> Numeric,
        discount_total -> Numeric,
        order_total -> Numeric,
        is_club_shipment -> Bool,
        line_items -> Jsonb,
        ordered_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outreach_campaigns (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        status -> Text,
        target_criteria -> Jsonb,
        email_template_id -> Nullable<Uuid>,
        follow_up_schedule -> Jsonb,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outreach_emails (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        prospect_id -> Nullable<Uuid>,
        prospect_email -> Nullable<Text>,
        prospect_name -> Nullable<Text>,
        company_name -> Nullable<Text>,
        website -> Nullable<Text>,
        template_id -> Nullable<Uuid>,
        subject -> Text,
        content -> Text,
        status -> Text,
        sent_at -> Nullable<Timestamptz>,
        opened_at -> Nullable<Timestamptz>,
        replied_at -> Nullable<Timestamptz>,
        thread_id -> Nullable<Text>,
        gmail_message_id -> Nullable<Text>,
        follow_up_sequence -> Int4,
        sender_email -> Nullable<Text>,
        missing_email -> Bool,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        funnel_counted -> Array<Nullable<Text>>,
    }
}

diesel::table! {
    outreach_metrics (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        total_emails_sent -> Int4,
        total_emails_delivered -> Int4,
        total_emails_opened -> Int4,
        total_emails_clicked -> Int4,
        total_emails_replied -> Int4,
        total_emails_bounced -> Int4,
        total_emails_unsubscribed -> Int4,
        open_rate -> Numeric,
        click_rate -> Numeric,
        reply_rate -> Numeric,
        bounce_rate -> Numeric,
        revenue_generated -> Numeric,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outreach_tracking (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email_id -> Uuid,
        prospect_id -> Nullable<Uuid>,
        campaign_id -> Uuid,
        action -> Text,
        timestamp -> Timestamptz,
        metadata -> Jsonb,
    }
}

diesel::table! {
    performance_metrics (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        event_type -> Text,
        metric_name -> Text,
        metric_value -> Numeric,
        metric_unit -> Text,
        response_time_ms -> Nullable<Int4>,
        success_rate -> Nullable<Numeric>,
        ai_accuracy -> Nullable<Numeric>,
        error_count -> Int4,
        source_component -> Nullable<Text>,
        metadata -> Jsonb,
        error_message_en -> Nullable<Text>,
        error_message_fr -> Nullable<Text>,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    platform_sessions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        platform -> Text,
        shop -> Text,
        access_token_encrypted -> Bytea,
        refresh_token_encrypted -> Nullable<Bytea>,
        scope -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        refresh_token_expires_at -> Nullable<Timestamptz>,
        refreshed_at -> Nullable<Timestamptz>,
        last_refresh_error -> Nullable<Text>,
    }
}

diesel::table! {
    point_transactions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        sequence -> Int8,
        transaction_type -> Text,
        points -> Int8,
        balance_after -> Int8,
        order_id -> Nullable<Uuid>,
        reward_id -> Nullable<Uuid>,
        redemption_id -> Nullable<Uuid>,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        crm_product_id -> Nullable<Text>,
        sku -> Nullable<Text>,
        title -> Text,
        wine_type -> Nullable<Text>,
        vintage -> Nullable<Int4>,
        varietal -> Nullable<Text>,
        price -> Numeric,
        inventory -> Nullable<Int4>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    prompt_ab_tests (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        test_name -> Text,
        prompt_name -> Text,
        control_variant_id -> Uuid,
        treatment_variant_id -> Uuid,
        control_traffic_percentage -> Numeric,
        treatment_traffic_percentage -> Numeric,
        min_sample_size -> Int4,
        max_duration_days -> Int4,
        significance_level -> Numeric,
        status -> Text,
        control_metrics -> Jsonb,
        treatment_metrics -> Jsonb,
        statistical_significance -> Nullable<Numeric>,
        winner_variant_id -> Nullable<Uuid>,
        started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    prompt_evolution (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        parent_prompt_id -> Uuid,
        child_prompt_id -> Uuid,
        evolution_type -> Text,
        evolution_strategy -> Nullable<Text>,
        parent_performance -> Jsonb,
        child_performance -> Jsonb,
        improvement_score -> Nullable<Numeric>,
        feedback_data -> Jsonb,
        optimization_goals -> Array<Nullable<Text>>,
        evolution_algorithm -> Nullable<Text>,
        evolved_at -> Timestamptz,
    }
}

diesel::table! {
    prompt_performance (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        prompt_registry_id -> Uuid,
        execution_id -> Text,
        input_data -> Jsonb,
        output_data -> Jsonb,
        output_quality_score -> Nullable<Numeric>,
        response_time_ms -> Nullable<Int4>,
        token_count -> Nullable<Int4>,
        cost_usd -> Nullable<Numeric>,
        accuracy_score -> Nullable<Numeric>,
        consistency_score -> Nullable<Numeric>,
        completeness_score -> Nullable<Numeric>,
        error_occurred -> Bool,
        error_message -> Nullable<Text>,
        feedback_id -> Nullable<Uuid>,
        user_rating -> Nullable<Int4>,
        environment -> Text,
        executed_at -> Timestamptz,
    }
}

diesel::table! {
    prompt_registry (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        prompt_name -> Text,
        variant_version -> Int4,
        variant_id -> Text,
        prompt_text -> Text,
        language -> Text,
        score -> Nullable<Numeric>,
        usage_count -> Int4,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    prospect_candidates (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        business_name -> Text,
        website -> Text,
        contact_email -> Nullable<Text>,
        industry -> Nullable<Text>,
        region -> Nullable<Text>,
        language -> Text,
        form_url -> Nullable<Text>,
        last_tested -> Nullable<Timestamptz>,
        response_score -> Nullable<Int4>,
        automation_need_score -> Nullable<Int4>,
        contacted -> Bool,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        embedding -> Nullable<Array<Nullable<Float4>>>,
        profile_similarity -> Nullable<Float8>,
    }
}

diesel::table! {
    prospect_form_tests (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        prospect_id -> Uuid,
        test_submitted_at -> Timestamptz,
        response_received_at -> Nullable<Timestamptz>,
        response_time_minutes -> Nullable<Int4>,
        has_autoresponder -> Bool,
        autoresponder_tone -> Text,
        autoresponder_content -> Nullable<Text>,
        score -> Nullable<Int4>,
        test_status -> Text,
        metadata -> Jsonb,
    }
}

diesel::table! {
    prospect_industry_performance (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        industry -> Text,
        total_contacted -> Int4,
        total_opened -> Int4,
        total_replied -> Int4,
        open_rate -> Numeric,
        reply_rate -> Numeric,
        avg_response_time_hours -> Nullable<Numeric>,
        priority_score -> Int4,
        last_updated -> Timestamptz,
    }
}

diesel::table! {
    prospect_outreach_log (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        prospect_id -> Uuid,
        subject -> Text,
        email_body -> Text,
        status -> Text,
        reply_content -> Nullable<Text>,
        metadata -> Jsonb,
        sent_at -> Timestamptz,
        opened_at -> Nullable<Timestamptz>,
        replied_at -> Nullable<Timestamptz>,
        email_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    prospects (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        call_id -> Nullable<Uuid>,
        name -> Text,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        company -> Nullable<Text>,
        need -> Nullable<Text>,
        budget -> Nullable<Text>,
        timeline -> Nullable<Text>,
        qualification_score -> Nullable<Int4>,
        status -> Text,
        source -> Text,
        notes -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    queue_jobs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        job_type -> Text,
        status -> Text,
        payload -> Jsonb,
        result -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    recipient_rollups (id) {
        id -> Int8,
        tenant_id -> Uuid,
        campaign_id -> Uuid,
        status -> Text,
        channel -> Text,
        n -> Int8,
        sent -> Int8,
        delivered -> Int8,
        opened -> Int8,
        clicked -> Int8,
        failed -> Int8,
        compacted -> Bool,
    }
}

diesel::table! {
    rendez_vous (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        call_id -> Nullable<Uuid>,
        client_name -> Text,
        client_phone -> Nullable<Text>,
        client_email -> Nullable<Text>,
        rdv_date -> Date,
        rdv_time -> Time,
        duration_minutes -> Int4,
        service_type -> Nullable<Text>,
        notes -> Nullable<Text>,
        status -> Text,
        reminder_24h_sent -> Bool,
        reminder_sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reward_redemptions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Uuid,
        reward_id -> Uuid,
        quantity -> Int4,
        points_spent -> Int8,
        status -> Text,
        fulfillment_notes -> Nullable<Text>,
        fulfilled_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        refunded_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    scheduled_runs (tenant_id, task, period) {
        tenant_id -> Uuid,
        task -> Text,
        period -> Text,
        ran_at -> Timestamptz,
        result -> Jsonb,
    }
}

diesel::table! {
    target_group_mappings (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        crm_name -> Text,
        postgres_table -> Text,
        filter -> Jsonb,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        email -> Nullable<Text>,
        language -> Text,
        email_tone -> Text,
        ai_personalized_reply -> Bool,
        booking_link -> Nullable<Text>,
        industry -> Nullable<Text>,
        last_connection -> Nullable<Timestamptz>,
        is_test -> Bool,
        is_internal -> Bool,
        tenant_shop -> Nullable<Text>,
        crm_type -> Nullable<Text>,
        org_name -> Nullable<Text>,
        org_contact -> Nullable<Text>,
        email_preferences -> Jsonb,
        last_active_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    testimonials (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        contact_id -> Uuid,
        content -> Text,
        rating -> Nullable<Int4>,
        video_url -> Nullable<Text>,
        status -> Text,
        published_at -> Nullable<Timestamptz>,
        linkedin_shared_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tickets (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        customer_id -> Nullable<Uuid>,
        call_id -> Nullable<Uuid>,
        ticket_number -> Text,
        subject -> Text,
        description -> Nullable<Text>,
        category -> Nullable<Text>,
        channel -> Text,
        priority -> Text,
        status -> Text,
        customer_name -> Nullable<Text>,
        customer_email -> Nullable<Text>,
        customer_phone -> Nullable<Text>,
        assigned_to -> Nullable<Text>,
        resolved_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    translation_cache (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        source_text -> Text,
        source_language -> Text,
        target_language -> Text,
        translated_text -> Text,
        context_type -> Text,
        quality_score -> Nullable<Numeric>,
        verified -> Bool,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    translation_dictionary (id) {
        id -> Uuid,
        source_text -> Text,
        source_language -> Text,
        target_language -> Text,
        translated_text -> Text,
        context -> Nullable<Text>,
        category -> Nullable<Text>,
        verified -> Bool,
        usage_count -> Int4,
        confidence -> Nullable<Numeric>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Int8,
        event_type -> Text,
        status -> Text,
        attempts -> Int4,
        response_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        url -> Text,
        event_types -> Array<Nullable<Text>>,
        secret -> Text,
        enabled -> Bool,
        consecutive_failures -> Int4,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    widget_configs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        api_key -> Text,
        theme -> Jsonb,
        allowed_domains -> Array<Nullable<Text>>,
        max_testimonials -> Int4,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(avenir_profile_embeddings -> tenants (tenant_id));
diesel::joinable!(call_logs -> tenants (tenant_id));
diesel::joinable!(campaign_delivery_counters -> tenants (tenant_id));
diesel::joinable!(campaign_executions -> tenants (tenant_id));
diesel::joinable!(campaign_recipients -> tenants (tenant_id));
diesel::joinable!(campaign_runs -> tenants (tenant_id));
diesel::joinable!(campaigns -> tenants (tenant_id));
diesel::joinable!(channel_configurations -> tenants (tenant_id));
diesel::joinable!(club_enrollments -> tenants (tenant_id));
diesel::joinable!(club_extensions -> tenants (tenant_id));
diesel::joinable!(club_programs -> tenants (tenant_id));
diesel::joinable!(club_stages -> tenants (tenant_id));
diesel::joinable!(communication_log -> channel_configurations (channel_configuration_id));
diesel::joinable!(communication_log -> tenants (tenant_id));
diesel::joinable!(communication_preferences -> tenants (tenant_id));
diesel::joinable!(communication_templates -> tenants (tenant_id));
diesel::joinable!(contacts -> tenants (tenant_id));
diesel::joinable!(crm_connections -> tenants (tenant_id));
diesel::joinable!(crm_webhook_receipts -> tenants (tenant_id));
diesel::joinable!(customer_activities -> tenants (tenant_id));
diesel::joinable!(customer_rollups -> tenants (tenant_id));
diesel::joinable!(customers -> tenants (tenant_id));
diesel::joinable!(demo_sessions -> tenants (tenant_id));
diesel::joinable!(discounts -> tenants (tenant_id));
diesel::joinable!(domain_events -> tenants (tenant_id));
diesel::joinable!(email_events -> tenants (tenant_id));
diesel::joinable!(email_sequence_steps -> tenants (tenant_id));
diesel::joinable!(email_sequences -> tenants (tenant_id));
diesel::joinable!(email_templates -> tenants (tenant_id));
diesel::joinable!(feedback_tracking -> tenants (tenant_id));
diesel::joinable!(growth_brain -> tenants (tenant_id));
diesel::joinable!(idempotency_keys -> tenants (tenant_id));
diesel::joinable!(integration_logs -> tenants (tenant_id));
diesel::joinable!(lead_actions -> tenants (tenant_id));
diesel::joinable!(lead_memory -> tenants (tenant_id));
diesel::joinable!(lead_notes -> tenants (tenant_id));
diesel::joinable!(loyalty_point_rules -> tenants (tenant_id));
diesel::joinable!(loyalty_rewards -> tenants (tenant_id));
diesel::joinable!(order_refunds -> tenants (tenant_id));
diesel::joinable!(order_rollups -> tenants (tenant_id));
diesel::joinable!(orders -> tenants (tenant_id));
diesel::joinable!(outreach_campaigns -> tenants (tenant_id));
diesel::joinable!(outreach_emails -> tenants (tenant_id));
diesel::joinable!(outreach_metrics -> tenants (tenant_id));
diesel::joinable!(outreach_tracking -> tenants (tenant_id));
diesel::joinable!(performance_metrics -> tenants (tenant_id));
diesel::joinable!(platform_sessions -> tenants (tenant_id));
diesel::joinable!(point_transactions -> tenants (tenant_id));
diesel::joinable!(products -> tenants (tenant_id));
diesel::joinable!(prompt_ab_tests -> tenants (tenant_id));
diesel::joinable!(prompt_evolution -> tenants (tenant_id));
diesel::joinable!(prompt_performance -> tenants (tenant_id));
diesel::joinable!(prompt_registry -> tenants (tenant_id));
diesel::joinable!(prospect_candidates -> tenants (tenant_id));
diesel::joinable!(prospect_form_tests -> tenants (tenant_id));
diesel::joinable!(prospect_industry_performance -> tenants (tenant_id));
diesel::joinable!(prospect_outreach_log -> tenants (tenant_id));
diesel::joinable!(prospects -> tenants (tenant_id));
diesel::joinable!(queue_jobs -> tenants (tenant_id));
diesel::joinable!(recipient_rollups -> tenants (tenant_id));
diesel::joinable!(rendez_vous -> tenants (tenant_id));
diesel::joinable!(reward_redemptions -> tenants (tenant_id));
diesel::joinable!(scheduled_runs -> tenants (tenant_id));
diesel::joinable!(target_group_mappings -> tenants (tenant_id));
diesel::joinable!(testimonials -> tenants (tenant_id));
diesel::joinable!(tickets -> tenants (tenant_id));
diesel::joinable!(translation_cache -> tenants (tenant_id));
diesel::joinable!(webhook_deliveries -> domain_events (event_id));
diesel::joinable!(webhook_deliveries -> tenants (tenant_id));
diesel::joinable!(webhook_endpoints -> tenants (tenant_id));
diesel::joinable!(widget_configs -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    avenir_profile_embeddings,
    call_logs,
    campaign_delivery_counters,
    campaign_executions,
    campaign_recipients,
    campaign_runs,
    campaigns,
    channel_configurations,
    club_enrollments,
    club_extensions,
    club_programs,
    club_stages,
    communication_log,
    communication_preferences,
    communication_templates,
    contacts,
    crm_connections,
    crm_webhook_receipts,
    customer_activities,
    customer_rollups,
    customers,
    demo_sessions,
    discounts,
    domain_events,
    email_events,
    email_sequence_steps,
    email_sequences,
    email_templates,
    feedback_tracking,
    growth_brain,
    idempotency_keys,
    integration_logs,
    intent_translations,
    lead_actions,
    lead_memory,
    lead_notes,
    loyalty_point_rules,
    loyalty_rewards,
    order_refunds,
    order_rollups,
    orders,
    outreach_campaigns,
    outreach_emails,
    outreach_metrics,
    outreach_tracking,
    performance_metrics,
    platform_sessions,
    point_transactions,
    products,
    prompt_ab_tests,
    prompt_evolution,
    prompt_performance,
    prompt_registry,
    prospect_candidates,
    prospect_form_tests,
    prospect_industry_performance,
    prospect_outreach_log,
    prospects,
    queue_jobs,
    recipient_rollups,
    rendez_vous,
    reward_redemptions,
    scheduled_runs,
    target_group_mappings,
    tenants,
    testimonials,
    tickets,
    translation_cache,
    translation_dictionary,
    webhook_deliveries,
    webhook_endpoints,
    widget_configs,
);
