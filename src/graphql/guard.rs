//! What every operation goes through around the schema's execution (HTTP and
//! WebSocket alike): its text measured before it is parsed, its document taken from a
//! cache of parsed queries, its limits checked and its cost computed ([`super::cost`]),
//! its input checked for values PostgreSQL cannot store, whether it may skip the full
//! validation decided (see [`super::variables`]; HTTP only), and on the way out
//! `extensions.cost` added and every error given a code.
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
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Request, Response, ServerError, Value};
use async_graphql_value::Value as DocumentValue;

use super::budget::{Throttle, Throttled};
use super::cost::{text_nesting, CostModel, Refusal};
use super::variables::PlainVariables;
use super::AppSchema;
use crate::speed::{Mechanism, Speed};

/// How deeply brackets may nest in a document's text (a real document stays far below:
/// twelve levels of fields and a few of input objects).
pub const MAX_TEXT_NESTING: usize = 64;
/// How deeply a variable's value (or an argument's literal) may nest.
const MAX_VALUE_NESTING: usize = 64;

pub struct RequestGuard {
    parsed: ParsedQueries,
    costs: CostModel,
    plain: PlainVariables,
    speed: Speed,
}

/// What [`RequestGuard::prepare`] found out about one operation.
pub struct Prepared {
    /// Its cost (`None` for a query that does not parse, or one refused before its cost
    /// was known).
    pub cost: Option<usize>,
    /// Why it may not run (a coded error to answer with), if it may not.
    pub refusal: Option<ServerError>,
    /// Its document passed the full validation before, and its variables cannot fail it.
    pub skips_validation: bool,
    /// It is a query (nothing it runs writes): it may share a read group.
    pub read_only: bool,
    /// The name of the operation it runs (`operationName`, or its document's one named
    /// operation).
    pub operation_name: Option<String>,
    /// Where to record that its document passed the full validation, while it has not.
    unvalidated: Option<Validated>,
}

impl Prepared {
    /// A document that does not parse: the schema reports why.
    fn unparsed() -> Self {
        Prepared {
            cost: None,
            refusal: None,
            skips_validation: false,
            read_only: false,
            operation_name: None,
            unvalidated: None,
        }
    }

    fn refused(error: ServerError) -> Self {
        Prepared {
            refusal: Some(error),
            ..Prepared::unparsed()
        }
    }

    /// The response of an operation refused before it ran.
    pub fn refusal_response(&self) -> Option<Response> {
        self.refusal
            .clone()
            .map(|error| Response::from_errors(vec![error]))
    }
}

/// A coded error of a request refused before it runs.
pub fn coded_error(code: &str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

fn refusal_error(refusal: Refusal) -> ServerError {
    match refusal {
        Refusal::TooComplex(message) => coded_error("QUERY_TOO_COMPLEX", message),
        Refusal::Invalid(message) => coded_error("BAD_USER_INPUT", message),
    }
}

/// A document's text nested deeper than [`MAX_TEXT_NESTING`]: refused before it is parsed.
pub fn check_text(query: &str) -> Result<(), ServerError> {
    text_nesting(query, MAX_TEXT_NESTING)
        .map(|_| ())
        .map_err(refusal_error)
}

impl RequestGuard {
    pub fn new(schema: &AppSchema, speed: Speed) -> Self {
        let sdl =
            async_graphql::parser::parse_schema(schema.sdl()).expect("the schema's own SDL parses");
        Self {
            parsed: ParsedQueries::default(),
            costs: CostModel::of_schema(&sdl),
            plain: PlainVariables::of_schema(&sdl),
            speed,
        }
    }

    /// Hands `request` its parsed document (from the cache when the same text came
    /// before), checks its limits and input and computes its cost, and decides whether
    /// it may run without the full validation. A query that does not parse is left to
    /// the schema, which reports why; it has no cost.
    pub fn prepare(&self, request: &mut Request) -> Prepared {
        let parsed = match self.parsed.get(&request.query) {
            Some(found) => found,
            None => {
                if let Err(error) = check_text(&request.query) {
                    return Prepared::refused(error);
                }
                match async_graphql::parser::parse_query(&request.query) {
                    Ok(document) => {
                        let inspected = Inspected::of(&document);
                        self.parsed.keep(&request.query, document, inspected)
                    }
                    Err(_) => return Prepared::unparsed(),
                }
            }
        };
        let Parsed {
            document,
            validated,
            inspected,
        } = parsed;
        let cost = match self.costs.analyse(&document, &request.variables) {
            Ok(cost) => cost,
            Err(refusal) => return Prepared::refused(refusal_error(refusal)),
        };
        let unstorable = inspected.unstorable_literal.clone().or_else(|| {
            // The path is built only for a value found unstorable.
            let (name, value) = request
                .variables
                .iter()
                .find(|(_, value)| unstorable_at(value, &mut Vec::new(), 0))?;
            let mut path = inspected
                .variable_paths
                .get(name)
                .cloned()
                .unwrap_or_else(|| vec![name.to_string()]);
            unstorable_at(value, &mut path, 0);
            Some(path)
        });
        if let Some(field) = unstorable {
            let mut error = coded_error(
                "BAD_USER_INPUT",
                "a value holds a NUL character or nests too deeply",
            );
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("field", field);
            return Prepared::refused(error);
        }
        let passed = validated.load(Ordering::Relaxed);
        let operation = selected(&document, request.operation_name.as_deref());
        let skips_validation = passed
            && self.speed.on(Mechanism::ValidationSkip)
            && operation
                .is_some_and(|operation| self.plain.are_plain(operation, &request.variables));
        let read_only = operation.is_some_and(|operation| operation.ty == OperationType::Query);
        let unvalidated = (!passed).then_some(validated);
        let operation_name = match (&request.operation_name, &document.operations) {
            (Some(name), _) => Some(name.clone()),
            (None, DocumentOperations::Multiple(named)) if named.len() == 1 => {
                named.keys().next().map(|name| name.to_string())
            }
            _ => None,
        };
        request.set_parsed_query(document);
        Prepared {
            cost: Some(cost),
            refusal: None,
            skips_validation,
            read_only,
            operation_name,
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

    /// The `RATE_LIMITED` answer of an operation of `cost` its tenant's budget cannot pay
    /// for now (HTTP adds the status and `Retry-After`).
    pub fn throttled(cost: usize, throttled: &Throttled) -> Response {
        let retry_after = throttled.retry_after_secs();
        let mut response = Response::from_errors(vec![coded_error(
            "RATE_LIMITED",
            format!("this tenant's cost budget cannot pay for {cost} points now: retry in {retry_after} s"),
        )]);
        Self::finish(&mut response, Some(cost), None, Some(&throttled.throttle));
        response
    }

    /// Codes the response's errors and reports the operation's cost (Shopify's shape:
    /// `requestedQueryCost`, `actualQueryCost` when the budget was charged it, and the
    /// tenant's budget after it as `throttleStatus`).
    pub fn finish(
        response: &mut Response,
        cost: Option<usize>,
        actual: Option<usize>,
        throttle: Option<&Throttle>,
    ) {
        let errors = std::mem::take(&mut response.errors);
        response.errors = errors.into_iter().map(ensure_code).collect();
        if let Some(cost) = cost {
            let mut report = async_graphql::indexmap::IndexMap::new();
            report.insert(Name::new("requestedQueryCost"), Value::from(cost as u64));
            if let Some(actual) = actual {
                report.insert(Name::new("actualQueryCost"), Value::from(actual as u64));
            }
            if let Some(throttle) = throttle {
                report.insert(Name::new("throttleStatus"), throttle.to_value());
            }
            response
                .extensions
                .insert("cost".to_string(), Value::Object(report));
        }
    }
}

/// The most objects and lists an HTTP operation's result may hold (JSON values
/// included). The cost bounds what resolvers return; this bounds it again, whatever a
/// resolver does.
const MAX_RESULT_VALUES: usize = 200_000;

/// Holds an executed operation's result to [`MAX_RESULT_VALUES`] (an over-full one is
/// replaced by a `QUERY_TOO_COMPLEX` error) and returns what the operation actually cost:
/// the objects and lists its result holds, at most `requested` (the budget is charged
/// this; see `graphql::budget`). One walk of the result serves both.
pub fn measure_result(response: &mut Response, requested: usize) -> usize {
    let values = result_values(&response.data);
    if values > MAX_RESULT_VALUES {
        *response = Response::from_errors(vec![coded_error(
            "QUERY_TOO_COMPLEX",
            format!("the result holds more than {MAX_RESULT_VALUES} values: ask for fewer"),
        )]);
    }
    values.min(requested)
}

/// How many objects and lists `value` holds (a walk with its own stack: no recursion
/// over what a response holds).
fn result_values(value: &Value) -> usize {
    let mut stack = vec![value];
    let mut count = 0usize;
    while let Some(value) = stack.pop() {
        match value {
            Value::List(items) => {
                count += 1;
                stack.extend(items.iter());
            }
            Value::Object(fields) => {
                count += 1;
                stack.extend(fields.values());
            }
            _ => {}
        }
        if count > MAX_RESULT_VALUES {
            break;
        }
    }
    count
}

/// Whether `value` holds a string (or object key) with a NUL character, which
/// PostgreSQL's text and JSON types refuse, or nests deeper than [`MAX_VALUE_NESTING`];
/// `path` then leads to it.
fn unstorable_at(value: &Value, path: &mut Vec<String>, depth: usize) -> bool {
    if depth > MAX_VALUE_NESTING {
        return true;
    }
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Enum(name) => name.contains('\0'),
        Value::List(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(i.to_string());
            let found = unstorable_at(item, path, depth + 1);
            if !found {
                path.pop();
            }
            found
        }),
        Value::Object(fields) => fields.iter().any(|(key, item)| {
            path.push(key.to_string());
            let found = key.contains('\0') || unstorable_at(item, path, depth + 1);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

/// What is known of a document whatever its variables: the path of an argument literal
/// PostgreSQL could not store, and the argument path each variable is first used at (for
/// the field path of an error in its value). (Its cost is computed per request: computed
/// once per document it bought nothing measurable, `docs/architecture.md`.)
#[derive(Debug, Default)]
struct Inspected {
    unstorable_literal: Option<Vec<String>>,
    variable_paths: HashMap<Name, Vec<String>>,
}

impl Inspected {
    fn of(document: &ExecutableDocument) -> Self {
        let mut inspected = Inspected::default();
        let sets = document
            .operations
            .iter()
            .map(|(_, op)| &op.node.selection_set.node)
            .chain(
                document
                    .fragments
                    .values()
                    .map(|f| &f.node.selection_set.node),
            );
        for set in sets {
            inspected.arguments_of(set, 0);
        }
        inspected
    }

    /// Walks the arguments of `set`'s fields (fragments are walked where they are
    /// defined, not where they are spread: each is walked once).
    fn arguments_of(&mut self, set: &SelectionSet, depth: usize) {
        if depth > super::cost::MAX_NESTING {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    for (name, value) in &field.node.arguments {
                        let mut path = vec![name.node.to_string()];
                        self.value(&value.node, &mut path, 0);
                    }
                    self.arguments_of(&field.node.selection_set.node, depth + 1);
                }
                Selection::InlineFragment(inline) => {
                    self.arguments_of(&inline.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    fn value(&mut self, value: &DocumentValue, path: &mut Vec<String>, depth: usize) {
        if depth > MAX_VALUE_NESTING {
            self.unstorable_literal.get_or_insert_with(|| path.clone());
            return;
        }
        match value {
            DocumentValue::Variable(name) => {
                self.variable_paths
                    .entry(name.clone())
                    .or_insert_with(|| path.clone());
            }
            DocumentValue::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    self.value(item, path, depth + 1);
                    path.pop();
                }
            }
            DocumentValue::Object(fields) => {
                for (key, item) in fields {
                    path.push(key.to_string());
                    if key.contains('\0') {
                        self.unstorable_literal.get_or_insert_with(|| path.clone());
                    }
                    self.value(item, path, depth + 1);
                    path.pop();
                }
            }
            DocumentValue::String(text) if text.contains('\0') => {
                self.unstorable_literal.get_or_insert_with(|| path.clone());
            }
            _ => {}
        }
    }
}

/// The operation a request runs, when the document says without doubt (otherwise the
/// schema decides, and reports an unknown or missing operation name).
pub fn selected<'d>(
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

/// A parsed document, whether it has passed the full validation, and what is known of
/// it whatever its variables.
#[derive(Clone)]
struct Parsed {
    document: ExecutableDocument,
    validated: Validated,
    inspected: Arc<Inspected>,
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
    fn keep(&self, query: &str, document: ExecutableDocument, inspected: Inspected) -> Parsed {
        let parsed = Parsed {
            document,
            validated: Validated::default(),
            inspected: Arc::new(inspected),
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
        // async-graphql's limits: "Query is too complex.", "Query is nested too deep.",
        // "The recursion depth of the query cannot be greater than …"
        let code = if ["too complex", "too deep", "recursion depth"]
            .iter()
            .any(|m| error.message.contains(m))
        {
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
    fn result_values_are_counted_without_recursion_and_the_count_stops_past_the_limit() {
        let nested = serde_json::from_str::<serde_json::Value>(&format!(
            "{}1{}",
            "[".repeat(100),
            "]".repeat(100)
        ))
        .unwrap();
        assert_eq!(result_values(&Value::from_json(nested).unwrap()), 100);
        let wide = Value::List(vec![Value::List(vec![]); MAX_RESULT_VALUES * 2]);
        assert_eq!(result_values(&wide), MAX_RESULT_VALUES + 1);
    }

    #[test]
    fn parsed_documents_are_kept_by_exact_text_and_bounded() {
        let parsed = ParsedQueries::default();
        let query = "{ viewer { tenant { id } } }";
        assert!(parsed.get(query).is_none());
        parsed.keep(query, parse(query), Inspected::default());
        let kept = parsed.get(query).expect("kept");
        assert_eq!(
            format!("{:?}", kept.document),
            format!("{:?}", parse(query))
        );
        assert!(!kept.validated.load(Ordering::Relaxed), "not validated yet");
        kept.validated.store(true, Ordering::Relaxed);
        let validated = parsed.get(query).expect("kept").validated;
        assert!(validated.load(Ordering::Relaxed), "validated");
        assert!(parsed.get("{ viewer { tenant { slug } } }").is_none());

        let long = format!("{{ viewer {{ tenant {{ id }} }} }}{}", " ".repeat(8 * 1024));
        parsed.keep(&long, parse(&long), Inspected::default());
        assert!(
            parsed.get(&long).is_none(),
            "oversized queries are not kept"
        );

        for n in 0..ParsedQueries::MAX_DOCUMENTS + 1 {
            let query = format!("query Q{n} {{ viewer {{ tenant {{ id }} }} }}");
            parsed.keep(&query, parse(&query), Inspected::default());
        }
        let kept = parsed.documents.lock().unwrap().len();
        assert!(
            kept <= ParsedQueries::MAX_DOCUMENTS,
            "{kept} documents kept"
        );
    }
}
