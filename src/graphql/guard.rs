//! What every operation goes through around the schema's execution (HTTP and
//! WebSocket alike): its document taken from a cache of parsed queries, its cost
//! computed, whether it may skip the full validation decided (see
//! [`super::variables`]; HTTP only), and on the way out `extensions.cost` added and every
//! error given a code.
//! Errors raised by resolvers through `AppError` already carry one; anything else is
//! either a request problem (parse, validation, argument coercion: `BAD_USER_INPUT`) or
//! an unexpected error whose text is replaced by an opaque message with a logged
//! correlation id.
//!
//! None of this is an async-graphql extension on purpose: with any extension installed,
//! the library routes every field of every response through the extension chain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::{Request, Response, ServerError, Value};

use super::cost::CostModel;
use super::variables::PlainVariables;
use super::AppSchema;

pub struct RequestGuard {
    parsed: ParsedQueries,
    costs: CostModel,
    plain: PlainVariables,
}

/// What [`RequestGuard::prepare`] found out about one operation.
pub struct Prepared {
    /// Its cost (`None` for a query that does not parse).
    pub cost: Option<usize>,
    /// Its document passed the full validation before, and its variables cannot fail it.
    pub skips_validation: bool,
    /// It is a query (nothing it runs writes): it may share a read group.
    pub read_only: bool,
    /// Where to record that its document passed the full validation, while it has not.
    unvalidated: Option<Validated>,
}

impl RequestGuard {
    pub fn new(schema: &AppSchema) -> Self {
        let sdl =
            async_graphql::parser::parse_schema(schema.sdl()).expect("the schema's own SDL parses");
        Self {
            parsed: ParsedQueries::default(),
            costs: CostModel::of_schema(&sdl),
            plain: PlainVariables::of_schema(&sdl),
        }
    }

    /// Hands `request` its parsed document (from the cache when the same text came
    /// before), computes its cost, and decides whether it may run without the full
    /// validation. A query that does not parse is left to the schema, which reports why;
    /// it has no cost.
    pub fn prepare(&self, request: &mut Request) -> Prepared {
        let Parsed {
            document,
            validated,
            fixed_cost,
        } = match self.parsed.get(&request.query) {
            Some(found) => found,
            None => match async_graphql::parser::parse_query(&request.query) {
                Ok(document) => {
                    let fixed_cost = self.costs.fixed_cost(&document);
                    self.parsed.keep(&request.query, document, fixed_cost)
                }
                Err(_) => {
                    return Prepared {
                        cost: None,
                        skips_validation: false,
                        read_only: false,
                        unvalidated: None,
                    }
                }
            },
        };
        let cost = fixed_cost.unwrap_or_else(|| self.costs.cost(&document, &request.variables));
        let passed = validated.load(Ordering::Relaxed);
        let operation = selected(&document, request.operation_name.as_deref());
        let skips_validation = passed
            && operation
                .is_some_and(|operation| self.plain.are_plain(operation, &request.variables));
        let read_only = operation.is_some_and(|operation| operation.ty == OperationType::Query);
        let unvalidated = (!passed).then_some(validated);
        request.set_parsed_query(document);
        Prepared {
            cost: Some(cost),
            skips_validation,
            read_only,
            unvalidated,
        }
    }

    /// Records that the document of an operation run with the full validation passed it
    /// (the response has data: a refused document has none).
    pub fn settle(&self, prepared: &Prepared, response: &Response) {
        if let Some(validated) = &prepared.unvalidated {
            if !matches!(response.data, Value::Null) {
                validated.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Codes the response's errors and reports the operation's cost.
    pub fn finish(response: &mut Response, cost: Option<usize>) {
        let errors = std::mem::take(&mut response.errors);
        response.errors = errors.into_iter().map(ensure_code).collect();
        if let Some(cost) = cost {
            response
                .extensions
                .insert("cost".to_string(), Value::from(cost as u64));
        }
    }
}

/// The operation a request runs, when the document says without doubt (otherwise the
/// schema decides, and reports an unknown or missing operation name).
fn selected<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        _ => None,
    }
}

/// Whether a document has passed the full validation (shared by its cache entry and the
/// operations running it).
type Validated = Arc<AtomicBool>;

/// A parsed document, whether it has passed the full validation, and its cost when no
/// variable changes it.
#[derive(Clone)]
struct Parsed {
    document: ExecutableDocument,
    validated: Validated,
    fixed_cost: Option<usize>,
}

/// Parsed documents by query text. Dashboards and integrations send the same few queries
/// again and again; parsing is a large share of a small request's time, copying a parsed
/// document a small one.
#[derive(Default)]
struct ParsedQueries {
    documents: Mutex<HashMap<String, Parsed>>,
}

impl ParsedQueries {
    /// At most this many documents are kept (the map starts over when full), and only of
    /// queries up to this size.
    const MAX_DOCUMENTS: usize = 256;
    const MAX_QUERY_BYTES: usize = 8 * 1024;

    fn get(&self, query: &str) -> Option<Parsed> {
        let documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        documents.get(query).cloned()
    }

    /// Keeps `document` (if its query is small enough), not validated yet; returns it
    /// with its flag.
    fn keep(&self, query: &str, document: ExecutableDocument, fixed_cost: Option<usize>) -> Parsed {
        let parsed = Parsed {
            document,
            validated: Validated::default(),
            fixed_cost,
        };
        if query.len() > Self::MAX_QUERY_BYTES {
            return parsed;
        }
        let mut documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        if documents.len() >= Self::MAX_DOCUMENTS {
            documents.clear();
        }
        documents.insert(query.to_owned(), parsed.clone());
        parsed
    }
}

const REQUEST_ERROR_PREFIXES: &[&str] = &[
    "Invalid value for argument",
    "Failed to parse",
    // An argument's value of the wrong type inside an input object (async-graphql's
    // `InputValueError::expected_type`, raised when the resolver parses its arguments).
    "Expected input type",
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
        parsed.keep(query, parse(query), Some(3));
        let kept = parsed.get(query).expect("kept");
        assert_eq!(
            format!("{:?}", kept.document),
            format!("{:?}", parse(query))
        );
        assert_eq!(kept.fixed_cost, Some(3));
        assert!(!kept.validated.load(Ordering::Relaxed), "not validated yet");
        kept.validated.store(true, Ordering::Relaxed);
        let validated = parsed.get(query).expect("kept").validated;
        assert!(validated.load(Ordering::Relaxed), "validated");
        assert!(parsed.get("{ viewer { tenant { slug } } }").is_none());

        let long = format!("{{ viewer {{ tenant {{ id }} }} }}{}", " ".repeat(8 * 1024));
        parsed.keep(&long, parse(&long), None);
        assert!(
            parsed.get(&long).is_none(),
            "oversized queries are not kept"
        );

        for n in 0..ParsedQueries::MAX_DOCUMENTS + 1 {
            let query = format!("query Q{n} {{ viewer {{ tenant {{ id }} }} }}");
            parsed.keep(&query, parse(&query), None);
        }
        let kept = parsed.documents.lock().unwrap().len();
        assert!(
            kept <= ParsedQueries::MAX_DOCUMENTS,
            "{kept} documents kept"
        );
    }
}
