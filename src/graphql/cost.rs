//! The cost every response reports in `extensions.cost` (SPEC §5): each field costs 1
//! plus its selection, except a paged field (one that takes `first`), which costs `first`
//! (or `last` when it pages backward; 20 when neither is given, 0 when negative) times its
//! selection; `__typename` is free, fragment
//! spreads count where they are spread, and every operation of the document counts.
//!
//! This is the complexity async-graphql computes for its `limit_complexity` check from the
//! schema's `complexity = "first.unwrap_or(20)…"` attributes; the library only hands that
//! figure to extensions, and having one makes every field of every response go through
//! the extension chain (a tenth of a 360's instructions). The field types come from the
//! schema's own SDL, and a test checks both computations agree, over every paged field.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, FieldDefinition, OperationDefinition, OperationType,
    Selection, SelectionSet, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value, Variables};

use super::connection::DEFAULT_PAGE_SIZE;

/// A field's type as far as cost is concerned.
struct FieldCost {
    /// The named type under any list and non-null wrappers.
    ty: Name,
    paged: bool,
}

/// The object types of a schema, by name, with their fields.
pub struct CostModel {
    types: HashMap<Name, HashMap<Name, FieldCost>>,
    query: Name,
    mutation: Name,
    subscription: Name,
}

/// How many items a paged field is charged for when `first` is not given: the page it
/// then returns.
const DEFAULT_PAGE: i64 = DEFAULT_PAGE_SIZE as i64;

/// A paged field takes `first`.
fn is_paged(field: &FieldDefinition) -> bool {
    field.arguments.iter().any(|a| a.node.name.node == "first")
}

/// The named type under any list and non-null wrappers.
fn named_type(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(inner) => named_type(inner),
    }
}

impl CostModel {
    /// The model of the schema `sdl` describes (async-graphql's own SDL export).
    pub fn of_sdl(sdl: &str) -> Result<Self, async_graphql::parser::Error> {
        Ok(Self::of_schema(&async_graphql::parser::parse_schema(sdl)?))
    }

    /// The model of a parsed schema.
    pub fn of_schema(document: &ServiceDocument) -> Self {
        let mut model = CostModel {
            types: HashMap::new(),
            query: Name::new("Query"),
            mutation: Name::new("Mutation"),
            subscription: Name::new("Subscription"),
        };
        for definition in &document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = &schema.node;
                    if let Some(query) = &schema.query {
                        model.query = query.node.clone();
                    }
                    if let Some(mutation) = &schema.mutation {
                        model.mutation = mutation.node.clone();
                    }
                    if let Some(subscription) = &schema.subscription {
                        model.subscription = subscription.node.clone();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = &ty.node;
                    let TypeKind::Object(object) = &ty.kind else {
                        continue;
                    };
                    let fields = object
                        .fields
                        .iter()
                        .map(|field| {
                            let field = &field.node;
                            let cost = FieldCost {
                                ty: named_type(&field.ty.node).clone(),
                                paged: is_paged(field),
                            };
                            (field.name.node.clone(), cost)
                        })
                        .collect();
                    model.types.insert(ty.name.node.clone(), fields);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        model
    }

    /// The cost of `document` run with `variables`.
    pub fn cost(&self, document: &ExecutableDocument, variables: &Variables) -> usize {
        self.walk(document, variables).0
    }

    /// The cost of `document` whatever its variables' values, when no paged field of it
    /// takes `first` from a variable (a document's usual case: the guard then computes
    /// its cost once, not per request).
    pub fn fixed_cost(&self, document: &ExecutableDocument) -> Option<usize> {
        match self.walk(document, &Variables::default()) {
            (cost, false) => Some(cost),
            (_, true) => None,
        }
    }

    /// The cost, and whether a variable's value (or default) went into it.
    fn walk(&self, document: &ExecutableDocument, variables: &Variables) -> (usize, bool) {
        let read_variable = Cell::new(false);
        let cost = document
            .operations
            .iter()
            .map(|(_, operation)| {
                let operation = &operation.node;
                let root = match operation.ty {
                    OperationType::Query => &self.query,
                    OperationType::Mutation => &self.mutation,
                    OperationType::Subscription => &self.subscription,
                };
                let walk = Walk {
                    model: self,
                    document,
                    operation,
                    variables,
                    read_variable: &read_variable,
                    fragments: RefCell::default(),
                };
                walk.selection_set(Some(root), &operation.selection_set.node, 0)
            })
            .fold(0, usize::saturating_add);
        (cost, read_variable.get())
    }
}

/// How deep a walk goes (fields, fragments): the schema refuses documents nested deeper
/// than `MAX_RECURSIVE_DEPTH` after this runs, so past this the cost no longer matters.
const MAX_WALK_DEPTH: usize = 4 * super::MAX_RECURSIVE_DEPTH;

/// One operation's walk through its selections.
struct Walk<'a> {
    model: &'a CostModel,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// Set when a paged field's `first` names a variable.
    read_variable: &'a Cell<bool>,
    /// Each fragment's cost, once walked (`None` while being walked: a cycle, which the
    /// schema refuses, counts 0). Spreading a fragment again costs a lookup, not a walk.
    fragments: RefCell<HashMap<Name, Option<usize>>>,
}

impl Walk<'_> {
    fn selection_set(&self, parent: Option<&Name>, set: &SelectionSet, depth: usize) -> usize {
        if depth > MAX_WALK_DEPTH {
            return 0;
        }
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => self.field(parent, &field.node, depth + 1),
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, depth + 1)
                }
                Selection::InlineFragment(inline) => {
                    let on = inline.node.type_condition.as_ref().map(|c| &c.node.on.node);
                    self.selection_set(on.or(parent), &inline.node.selection_set.node, depth + 1)
                }
            })
            .fold(0, usize::saturating_add)
    }

    fn fragment(&self, name: &Name, depth: usize) -> usize {
        if let Some(known) = self.fragments.borrow().get(name) {
            return known.unwrap_or(0);
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return 0;
        };
        self.fragments.borrow_mut().insert(name.clone(), None);
        let on = &fragment.node.type_condition.node.on.node;
        let cost = self.selection_set(Some(on), &fragment.node.selection_set.node, depth);
        self.fragments.borrow_mut().insert(name.clone(), Some(cost));
        cost
    }

    fn field(&self, parent: Option<&Name>, field: &Field, depth: usize) -> usize {
        if field.name.node == "__typename" {
            return 0;
        }
        let known = parent
            .and_then(|parent| self.model.types.get(parent))
            .and_then(|fields| fields.get(&field.name.node));
        let children = self.selection_set(known.map(|k| &k.ty), &field.selection_set.node, depth);
        match known {
            Some(k) if k.paged => (self.first(field).max(0) as usize).saturating_mul(children),
            _ => 1 + children,
        }
    }

    /// The field's `first` (else its `last`): given, from a variable (or its default), or
    /// the default page.
    fn first(&self, field: &Field) -> i64 {
        let Some(value) = field
            .get_argument("first")
            .or_else(|| field.get_argument("last"))
        else {
            return DEFAULT_PAGE;
        };
        let number = value
            .node
            .clone()
            .into_const_with(|name| self.variable(&name).ok_or(()))
            .ok();
        match number {
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .unwrap_or(DEFAULT_PAGE),
            _ => DEFAULT_PAGE,
        }
    }

    /// A variable's value in the request, or its default in the operation.
    fn variable(&self, name: &Name) -> Option<Value> {
        self.read_variable.set(true);
        self.variables.get(name).cloned().or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref())
                .map(|v| v.node.clone())
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{HashSet, VecDeque};
    use std::sync::{Arc, Mutex};

    use async_graphql::extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextValidation,
    };
    use async_graphql::parser::types::TypeDefinition;
    use async_graphql::{Request, Schema, ServerError, ValidationResult};

    use super::*;
    use crate::graphql::{build_schema, Mutation, Query, Subscription, MAX_COMPLEXITY};

    /// Records the complexity async-graphql's validation computed, then stops the request
    /// (the test has no data for resolvers).
    struct Capture(Arc<Mutex<Option<usize>>>);

    impl ExtensionFactory for Capture {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(Capture(self.0.clone()))
        }
    }

    #[async_trait::async_trait]
    impl Extension for Capture {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            let result = next.run(ctx).await?;
            *self.0.lock().unwrap() = Some(result.complexity);
            Err(vec![ServerError::new("stopped after validation", None)])
        }
    }

    /// The schema as async-graphql validates it (the README's examples are checked with
    /// it too).
    pub(crate) struct Library {
        schema: Schema<Query, Mutation, Subscription>,
        captured: Arc<Mutex<Option<usize>>>,
    }

    impl Library {
        pub(crate) fn new() -> Self {
            let captured = Arc::new(Mutex::new(None));
            let schema = Schema::build(Query::default(), Mutation::default(), Subscription)
                .extension(Capture(captured.clone()))
                .finish();
            Library { schema, captured }
        }

        /// async-graphql's complexity of a valid request (panics, with the errors, on an
        /// invalid one).
        pub(crate) async fn complexity(&self, request: Request) -> usize {
            *self.captured.lock().unwrap() = None;
            let query = request.query.clone();
            let response = async_graphql::Schema::execute(&self.schema, request).await;
            self.captured
                .lock()
                .unwrap()
                .unwrap_or_else(|| panic!("{query} did not validate: {:?}", response.errors))
        }
    }

    fn ours(model: &CostModel, query: &str, variables: serde_json::Value) -> usize {
        let document = async_graphql::parser::parse_query(query).unwrap();
        model.cost(&document, &Variables::from_json(variables))
    }

    /// A value for a required argument of a scalar type (`None` for other types).
    fn placeholder(ty: &Type) -> Option<&'static str> {
        match &ty.base {
            BaseType::Named(name) if name == "ID" => {
                Some("\"00000000-0000-0000-0000-000000000000\"")
            }
            BaseType::Named(name) if name == "String" => Some("\"x\""),
            BaseType::Named(name) if name == "Int" => Some("1"),
            _ => None,
        }
    }

    /// For every field of an object type reachable from `Query` (through fields whose
    /// required arguments are scalars), a query selecting it; for a paged one, also its
    /// page, with and without `first`.
    fn paged_field_queries(sdl: &str) -> Vec<String> {
        let document = async_graphql::parser::parse_schema(sdl).unwrap();
        let objects: HashMap<String, TypeDefinition> = document
            .definitions
            .into_iter()
            .filter_map(|d| match d {
                TypeSystemDefinition::Type(t) if matches!(t.node.kind, TypeKind::Object(_)) => {
                    Some((t.node.name.node.to_string(), t.node))
                }
                _ => None,
            })
            .collect();
        let mut queries = Vec::new();
        let mut seen = HashSet::new();
        // (type, the query text up to an open selection of that type, closing braces)
        let mut queue = VecDeque::from([("Query".to_string(), "{".to_string(), 1)]);
        while let Some((ty, prefix, open)) = queue.pop_front() {
            if !seen.insert(ty.clone()) {
                continue;
            }
            let TypeKind::Object(object) = &objects[&ty].kind else {
                unreachable!()
            };
            for field in &object.fields {
                let field = &field.node;
                let mut args = Vec::new();
                let mut usable = true;
                for arg in &field.arguments {
                    let arg = &arg.node;
                    if arg.ty.node.nullable || arg.default_value.is_some() {
                        continue;
                    }
                    match placeholder(&arg.ty.node) {
                        Some(value) => args.push(format!("{}: {value}", arg.name.node)),
                        None => usable = false,
                    }
                }
                let target = named_type(&field.ty.node);
                if !usable || !objects.contains_key(target.as_str()) {
                    continue;
                }
                let paged = is_paged(field);
                let name = &field.name.node;
                let close = "}".repeat(open);
                let with = |extra: &str| {
                    let all: Vec<&str> = args
                        .iter()
                        .map(String::as_str)
                        .chain((!extra.is_empty()).then_some(extra))
                        .collect();
                    if all.is_empty() {
                        String::new()
                    } else {
                        format!("({})", all.join(", "))
                    }
                };
                // Every field, paged or not: one the model misjudged costs differently here.
                queries.push(format!(
                    "{prefix} {name}{} {{ __typename }} {close}",
                    with("")
                ));
                if paged {
                    for first in ["", "first: 3"] {
                        queries.push(format!(
                            "{prefix} {name}{} {{ pageInfo {{ hasNextPage }} nodes {{ __typename }} }} {close}",
                            with(first)
                        ));
                    }
                }
                queue.push_back((
                    target.to_string(),
                    format!(
                        "{prefix} {name}{} {{ __typename",
                        with(if paged { "first: 2" } else { "" })
                    ),
                    open + 1,
                ));
            }
        }
        queries
    }

    #[tokio::test]
    async fn the_reported_cost_is_the_complexity_the_schema_limits_for_every_paged_field() {
        let sdl = build_schema(None).sdl();
        let model = CostModel::of_sdl(&sdl).unwrap();
        let library = Library::new();
        let queries = paged_field_queries(&sdl);
        assert!(queries.len() > 60, "{} queries", queries.len());
        for query in &queries {
            let expected = library.complexity(Request::new(query)).await;
            assert_eq!(
                ours(&model, query, serde_json::json!({})),
                expected,
                "{query}"
            );
        }
        let nested = queries.iter().filter(|q| q.contains("activities")).count();
        assert!(nested >= 2, "Customer's own pages are among them");
    }

    #[tokio::test]
    async fn variables_defaults_fragments_aliases_and_every_operation_count_as_the_schema_counts() {
        let model = CostModel::of_sdl(&build_schema(None).sdl()).unwrap();
        let library = Library::new();
        let page = "fragment Row on Customer { id email activities(first: $a) { nodes { id type } } }
            query Page($n: Int, $a: Int = 4) {
              customers(first: $n) { nodes { ...Row orders { nodes { id } } } pageInfo { hasNextPage } }
              other: customers(first: 2) { nodes { ... on Customer { id ...Row } } }
              viewer { tenant { id } }
              __typename
            }";
        let cases = [
            (page, serde_json::json!({ "n": 7 })),
            (page, serde_json::json!({ "n": 7, "a": 0 })),
            (page, serde_json::json!({ "n": null, "a": 9 })),
            (page, serde_json::json!({ "n": -3 })),
            (
                "query A { viewer { tenant { id } } } query B($f: Int) { leads(first: $f) { nodes { id } } }",
                serde_json::json!({ "f": 11 }),
            ),
            // A backward page costs its `last`, as a forward one its `first`.
            (
                "query($l: Int) { customers(last: $l) { nodes { id activities(first: 9) { nodes { id } } } } }",
                serde_json::json!({ "l": 70 }),
            ),
            (
                "{ customers(last: 3, before: \"x\") { nodes { id } } }",
                serde_json::json!({}),
            ),
        ];
        for (query, variables) in cases {
            let mut request =
                Request::new(query).variables(Variables::from_json(variables.clone()));
            if query.contains("query A") {
                request = request.operation_name("B");
            }
            let expected = library.complexity(request).await;
            assert_eq!(ours(&model, query, variables), expected, "{query}");
        }
        // A page of 7 with a nested page of 4: not a constant.
        assert!(ours(&model, page, serde_json::json!({ "n": 7 })) > 7 * 4);
        // 100 nodes asked for backward cost 100 (not the default page's 20), so the
        // complexity limit holds for backward pages too.
        let backward = "{ customers(last: 100) { nodes { id } } }";
        assert_eq!(ours(&model, backward, serde_json::json!({})), 100 * (1 + 1));
    }

    #[test]
    fn a_cost_is_fixed_unless_a_page_size_comes_from_a_variable() {
        let model = CostModel::of_sdl(&build_schema(None).sdl()).unwrap();
        let parse = |query: &str| async_graphql::parser::parse_query(query).unwrap();
        let fixed =
            "query($id: ID) { customer(id: $id) { id activities(first: 10) { nodes { id } } } }";
        let cost = model.fixed_cost(&parse(fixed));
        assert_eq!(cost, Some(ours(&model, fixed, serde_json::json!({}))));
        assert_eq!(
            cost,
            Some(1 + 1 + 10 * (1 + 1)),
            "customer, id, ten nodes with an id"
        );
        for varying in [
            "query($n: Int) { leads(first: $n) { nodes { id } } }",
            "query($n: Int = 3) { leads(first: $n) { nodes { id } } }",
            "fragment F on Query { leads(first: $n) { nodes { id } } } query($n: Int) { ...F }",
        ] {
            assert_eq!(model.fixed_cost(&parse(varying)), None, "{varying}");
        }
    }

    #[test]
    fn cyclic_and_exponential_fragments_cost_a_bounded_walk() {
        let model = CostModel::of_sdl(&build_schema(None).sdl()).unwrap();
        let cyclic = "fragment A on Query { viewer { tenant { id } } ...B } fragment B on Query { ...A } { ...A }";
        assert_eq!(ours(&model, cyclic, serde_json::json!({})), 3);
        // 40 fragments, each spreading the next twice: 2^40 spreads if walked naively.
        let mut doubling = String::from("{ ...F0 }");
        for i in 0..40 {
            doubling.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i + 1,
                i + 1
            ));
        }
        doubling.push_str(" fragment F40 on Query { viewer { tenant { id } } }");
        let cost = ours(&model, &doubling, serde_json::json!({}));
        assert!(
            cost > MAX_COMPLEXITY,
            "{cost}: saturates, far past the limit"
        );
    }
}
