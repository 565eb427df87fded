//! A per-request extension: reports the query's cost in `extensions.cost` (also to the
//! WebSocket direct lane, for the payloads it renders), and makes sure
//! no error leaves without a code. Errors raised by resolvers through `AppError` already
//! carry one; anything else is either a request problem (parse, validation, argument
//! coercion: `BAD_USER_INPUT`) or an unexpected error whose text is replaced by an opaque
//! message with a logged correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Variables;
use async_graphql::{Response, ServerError, ValidationResult, Value};

use crate::graphql::ws::DirectLane;

#[derive(Default)]
pub struct RequestGuard {
    parsed: Arc<ParsedQueries>,
}

impl ExtensionFactory for RequestGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestGuardExtension {
            complexity: AtomicUsize::new(0),
            parsed: self.parsed.clone(),
        })
    }
}

struct RequestGuardExtension {
    complexity: AtomicUsize,
    parsed: Arc<ParsedQueries>,
}

/// Parsed documents by query text. Dashboards and integrations send the same few queries
/// again and again; parsing is a large share of a small request's time, copying a parsed
/// document a small one. Validation still runs on every request (it depends on nothing
/// but the document and the schema, but its cost and errors belong to the request).
#[derive(Default)]
struct ParsedQueries {
    documents: Mutex<HashMap<String, ExecutableDocument>>,
}

impl ParsedQueries {
    /// At most this many documents are kept (the map starts over when full), and only of
    /// queries up to this size.
    const MAX_DOCUMENTS: usize = 256;
    const MAX_QUERY_BYTES: usize = 8 * 1024;

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        documents.get(query).cloned()
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > Self::MAX_QUERY_BYTES {
            return;
        }
        let mut documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        if documents.len() >= Self::MAX_DOCUMENTS {
            documents.clear();
        }
        documents.insert(query.to_owned(), document.clone());
    }
}

const REQUEST_ERROR_PREFIXES: &[&str] = &[
    "Invalid value for argument",
    "Failed to parse",
    "Internal error: invalid",
    "Unknown",
];

fn ensure_code(mut error: ServerError) -> ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return error;
    }
    let is_request_error = error.path.is_empty()
        || REQUEST_ERROR_PREFIXES
            .iter()
            .any(|p| error.message.starts_with(p));
    if is_request_error {
        // async-graphql's depth and complexity limits: "Query is too complex." / "Query is
        // nested too deep."
        let code = if error.message.contains("too complex") || error.message.contains("too deep") {
            "QUERY_TOO_COMPLEX"
        } else {
            "BAD_USER_INPUT"
        };
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
        return error;
    }
    let correlation_id = uuid::Uuid::new_v4();
    tracing::error!(%correlation_id, message = %error.message, "unclassified resolver error");
    error.message = format!("internal error (correlation id {correlation_id})");
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "INTERNAL");
    extensions.set("correlationId", correlation_id.to_string());
    error
}

#[async_trait::async_trait]
impl Extension for RequestGuardExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> Result<ExecutableDocument, ServerError> {
        if let Some(document) = self.parsed.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await.map_err(ensure_code)?;
        self.parsed.keep(query, &document);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        match result {
            Ok(result) => {
                self.complexity.store(result.complexity, Ordering::Relaxed);
                // Payloads the WebSocket transport renders itself report it too.
                if let Some(lane) = ctx.data_opt::<DirectLane>() {
                    lane.set_cost(result.complexity);
                }
                Ok(result)
            }
            Err(errors) => Err(errors.into_iter().map(ensure_code).collect()),
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors = response.errors.into_iter().map(ensure_code).collect();
        response.extensions.insert(
            "cost".to_string(),
            Value::from(self.complexity.load(Ordering::Relaxed) as u64),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap()
    }

    #[test]
    fn parsed_documents_are_kept_by_exact_text_and_bounded() {
        let parsed = ParsedQueries::default();
        let query = "{ viewer { tenant { id } } }";
        assert!(parsed.get(query).is_none());
        parsed.keep(query, &parse(query));
        let kept = parsed.get(query).expect("kept");
        assert_eq!(format!("{kept:?}"), format!("{:?}", parse(query)));
        assert!(parsed.get("{ viewer { tenant { slug } } }").is_none());

        let long = format!("{{ viewer {{ tenant {{ id }} }} }}{}", " ".repeat(8 * 1024));
        parsed.keep(&long, &parse(&long));
        assert!(
            parsed.get(&long).is_none(),
            "oversized queries are not kept"
        );

        for n in 0..ParsedQueries::MAX_DOCUMENTS + 1 {
            let query = format!("query Q{n} {{ viewer {{ tenant {{ id }} }} }}");
            parsed.keep(&query, &parse(&query));
        }
        let kept = parsed.documents.lock().unwrap().len();
        assert!(
            kept <= ParsedQueries::MAX_DOCUMENTS,
            "{kept} documents kept"
        );
    }
}
