//! Schema assembly: one object per domain merged into `Query` / `Mutation`, the limits
//! every request is held to, and the request extension. Built once at start-up.

pub mod aggregate;
pub mod budget;
pub mod connection;
pub mod context;
pub mod cost;
pub mod events;
pub mod guard;
pub mod lane;
pub mod loaders;
pub mod scalars;
pub mod variables;

use std::sync::Arc;

use async_graphql::{MergedObject, Schema, ValidationMode};

use crate::domain::automations::graphql::{AutomationsMutation, AutomationsQuery};
use crate::domain::campaigns::graphql::{CampaignsMutation, CampaignsQuery};
use crate::domain::catalog::graphql::{CatalogMutation, CatalogQuery};
use crate::domain::comms::graphql::{CommsMutation, CommsQuery};
use crate::domain::crm::graphql::{CrmMutation, CrmQuery};
use crate::domain::customers::analytics::CustomersAnalyticsQuery;
use crate::domain::customers::graphql::{CustomersMutation, CustomersQuery};
use crate::domain::growth::graphql::{GrowthMutation, GrowthQuery};
use crate::domain::growth::intelligence::IntelligenceQuery;
use crate::domain::growth::monitoring::MonitoringQuery;
use crate::domain::growth::translation::TranslationMutation;
use crate::domain::leads::analytics::LeadsAnalyticsQuery;
use crate::domain::leads::graphql::{LeadsMutation, LeadsQuery};
use crate::domain::loyalty::analytics::LoyaltyAnalyticsQuery;
use crate::domain::loyalty::graphql::{LoyaltyMutation, LoyaltyQuery};
use crate::domain::messages::graphql::{MessagesMutation, MessagesQuery};
use crate::domain::outreach::graphql::{OutreachMutation, OutreachQuery};
use crate::domain::prompts::graphql::{PromptsMutation, PromptsQuery};
use crate::domain::tenancy::graphql::{TenancyMutation, TenancyQuery};
use crate::domain::webhooks::graphql::{WebhooksMutation, WebhooksQuery};
use crate::events::EventHub;
use crate::secrets::SecretKey;
use events::{EventsQuery, Subscription};

#[derive(MergedObject, Default)]
pub struct Query(
    TenancyQuery,
    CustomersQuery,
    CustomersAnalyticsQuery,
    CatalogQuery,
    CrmQuery,
    LoyaltyQuery,
    LoyaltyAnalyticsQuery,
    LeadsQuery,
    LeadsAnalyticsQuery,
    GrowthQuery,
    CampaignsQuery,
    OutreachQuery,
    EventsQuery,
    WebhooksQuery,
    AutomationsQuery,
    CommsQuery,
    MessagesQuery,
    IntelligenceQuery,
    PromptsQuery,
    MonitoringQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    TenancyMutation,
    CustomersMutation,
    CatalogMutation,
    CrmMutation,
    LoyaltyMutation,
    LeadsMutation,
    GrowthMutation,
    CampaignsMutation,
    OutreachMutation,
    WebhooksMutation,
    AutomationsMutation,
    CommsMutation,
    MessagesMutation,
    PromptsMutation,
    TranslationMutation,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Limits on by default (SPEC §5): depth, cost, nesting and the size of the expanded
/// document are checked before an operation runs ([`cost`], by [`guard`]); the schema
/// checks directives per field and, again, selection nesting. Batch and body size are
/// enforced by the HTTP layer before parsing.
pub const MAX_RECURSIVE_DEPTH: usize = cost::MAX_NESTING;
pub const MAX_DIRECTIVES: usize = 4;

/// The schema, with the event hub subscriptions read from (absent for `sdl`).
pub fn build_schema(hub: Option<Arc<EventHub>>) -> AppSchema {
    build_schema_validating(hub, None, WebhookPolicy::default(), ValidationMode::Strict)
}

/// Whether webhook endpoints may be plain `http` and reach private addresses (the
/// operator's development flag; see [`crate::domain::webhooks::target`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookPolicy {
    pub allow_insecure: bool,
}

/// The schema with the given validation: `Fast` checks only what depends on more than
/// the document and its variables' values (fragment cycles), for documents that passed
/// the full validation before (see [`variables`]). Either way, the guard has checked the
/// document's limits and cost before ([`guard`]): skipping the validation skips nothing
/// they hold.
/// With `secret_key`, resolvers can seal secrets (see [`crate::secrets`]).
pub fn build_schema_validating(
    hub: Option<Arc<EventHub>>,
    secret_key: Option<SecretKey>,
    webhooks: WebhookPolicy,
    mode: ValidationMode,
) -> AppSchema {
    let mut builder =
        Schema::build(Query::default(), Mutation::default(), Subscription).data(webhooks);
    if let Some(hub) = hub {
        builder = builder.data(hub);
    }
    if let Some(key) = secret_key {
        builder = builder.data(key);
    }
    builder
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES)
        .validation_mode(mode)
        .finish()
}

/// The SDL committed as `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None).sdl()
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    use async_graphql::Request;

    #[tokio::test]
    async fn every_example_operation_in_the_readme_validates_against_the_schema() {
        let readme = include_str!("../../README.md");
        let blocks: Vec<&str> = readme
            .split("```graphql")
            .skip(1)
            .map(|rest| rest.split("```").next().expect("a closed block"))
            .collect();
        assert!(blocks.len() >= 2, "the examples and the analytics blocks");
        let mut count = 0;
        for examples in blocks {
            let document =
                async_graphql::parser::parse_query(examples).expect("the examples parse");
            let DocumentOperations::Multiple(operations) = &document.operations else {
                panic!("the examples are named operations");
            };
            count += operations.len();
            validate(examples, operations).await;
        }
        assert!(count >= 13, "{count} examples");
    }

    async fn validate(
        examples: &str,
        operations: &std::collections::HashMap<
            async_graphql::Name,
            async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>,
        >,
    ) {
        let schema = super::build_schema(None);
        for (name, operation) in operations {
            let request = Request::new(examples).operation_name(name.as_str());
            let response = match operation.node.ty {
                OperationType::Subscription => {
                    let mut stream = schema.execute_stream(request);
                    futures_util::StreamExt::next(&mut stream)
                        .await
                        .expect("a first response")
                }
                _ => async_graphql::Schema::execute(&schema, request).await,
            };
            // Without a request context every resolver fails, at its path; a document
            // the validation refuses fails without one.
            let refused: Vec<_> = response
                .errors
                .iter()
                .filter(|e| e.path.is_empty())
                .collect();
            assert!(refused.is_empty(), "{name}: {refused:?}");
        }
    }
}
