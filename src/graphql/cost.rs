//! The limits every operation is held to before it runs, and the cost every response
//! reports in `extensions.cost` (SPEC §5). The cost reported is the cost enforced: the
//! schema itself no longer computes a complexity of its own.
//!
//! What a document costs, with its fragments expanded where they are spread:
//! - every field costs 1 plus its selection, `__typename` included;
//! - a paged field (one that takes `first`) costs `first` (or `last` when it pages
//!   backward; [`DEFAULT_PAGE`] when neither is given, 0 when negative) times its
//!   selection;
//! - an unpaged list of objects costs [`UNPAGED_LIST_BOUND`] times its selection: the
//!   resolvers never return more items than that ([`super::connection::bounded`]);
//! - a field whose `filter` has a `search` scans the tenant's rows: it costs
//!   [`SEARCH_COST`] more;
//! - an aggregate (a `…Aggregate` field for its totals, and each `groupBy` and `series`
//!   under it) reads every row its filter selects: it costs [`AGGREGATE_COST`] more;
//! - introspection (`__schema`, `__type`) costs 1 per field: the schema is small and
//!   fixed, and lists that nest each other there are refused (as graphql-js's
//!   `MaxIntrospectionDepthRule` does).
//!
//! Besides its cost, a document is refused when, expanded, it selects more than
//! [`MAX_NODES`] fields, nests data fields deeper than [`MAX_DEPTH`] or selections deeper
//! than [`MAX_NESTING`], or spreads fragments in a cycle. Every fragment is walked once
//! per analysis (its summary is kept and reused where it is spread again), and the walk
//! stops at [`MAX_NESTING`]: analysing a document costs time linear in its size whatever
//! it asks for. (async-graphql's own recursion-depth check and validation walk fragments
//! again at every spread, so they only ever see documents that passed this analysis.)

use std::cell::RefCell;
use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, FieldDefinition, OperationDefinition, OperationType,
    Selection, SelectionSet, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value, Variables};

use super::connection::{DEFAULT_PAGE_SIZE, UNPAGED_LIST_BOUND};

/// The most an operation may cost.
pub const MAX_COST: usize = 20_000;
/// The most fields (fragment spreads and inline fragments included) a document may
/// select once its fragments are expanded.
pub const MAX_NODES: usize = 2_000;
/// How deeply data fields may nest (introspection has its own rule).
pub const MAX_DEPTH: usize = 12;
/// How deeply selection sets may nest, fragments included.
pub const MAX_NESTING: usize = 32;
/// What a search (a `filter: { search }`) adds to its field's cost: it scans the
/// tenant's rows whatever the page size.
pub const SEARCH_COST: usize = 1_000;
/// What an aggregate statement adds to its field's cost: it reads every row its filter
/// selects.
pub const AGGREGATE_COST: usize = 1_000;
/// Introspection lists that may nest each other (`fields { type { fields … } }`).
const MAX_INTROSPECTION_LISTS: usize = 2;

/// How many items a paged field is charged for when `first` is not given: the page it
/// then returns.
const DEFAULT_PAGE: i64 = DEFAULT_PAGE_SIZE as i64;

/// Why a document is refused before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over a limit: `QUERY_TOO_COMPLEX`.
    TooComplex(String),
    /// Not a valid document: `BAD_USER_INPUT`.
    Invalid(String),
}

/// A field's type as far as cost is concerned.
struct FieldCost {
    /// The named type under any list and non-null wrappers.
    ty: Name,
    paged: bool,
    list: bool,
}

/// The object types of a schema, by name, with their fields.
pub struct CostModel {
    types: HashMap<Name, HashMap<Name, FieldCost>>,
    query: Name,
    mutation: Name,
    subscription: Name,
}

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
                                list: matches!(field.ty.node.base, BaseType::List(_)),
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

    /// Checks `document` run with `variables` against every limit and returns its cost.
    pub fn analyse(
        &self,
        document: &ExecutableDocument,
        variables: &Variables,
    ) -> Result<usize, Refusal> {
        let fragments = RefCell::default();
        let mut total = Summary::default();
        for (_, operation) in document.operations.iter() {
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
                fragments: &fragments,
            };
            let summary = walk.selection_set(root, &operation.selection_set.node, 0)?;
            total.cost = total.cost.saturating_add(summary.cost);
            total.nodes = total.nodes.saturating_add(summary.nodes);
            total.depth = total.depth.max(summary.depth);
        }
        if total.nodes > MAX_NODES {
            return Err(Refusal::TooComplex(format!(
                "the query selects {} fields once its fragments are expanded, more than {MAX_NODES}",
                total.nodes
            )));
        }
        if total.depth > MAX_DEPTH {
            return Err(Refusal::TooComplex(format!(
                "the query nests fields {} deep, more than {MAX_DEPTH}",
                total.depth
            )));
        }
        if total.cost > MAX_COST {
            return Err(Refusal::TooComplex(format!(
                "the query costs {}, more than {MAX_COST}",
                total.cost
            )));
        }
        Ok(total.cost)
    }
}

/// What a selection set (or a fragment) adds up to.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    cost: usize,
    /// Fields, spreads and inline fragments, expanded.
    nodes: usize,
    /// Deepest nesting of data fields.
    depth: usize,
    /// Deepest nesting of introspection lists.
    introspection_lists: usize,
    /// How many selection sets nest below this one.
    nesting: usize,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.cost = self.cost.saturating_add(other.cost);
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.depth = self.depth.max(other.depth);
        self.introspection_lists = self.introspection_lists.max(other.introspection_lists);
        self.nesting = self.nesting.max(other.nesting);
    }
}

fn too_deep() -> Refusal {
    Refusal::TooComplex(format!(
        "the query nests selections more than {MAX_NESTING} deep"
    ))
}

/// Fields of introspection types that return lists of types, fields or values.
fn is_introspection_list(name: &str) -> bool {
    matches!(
        name,
        "fields" | "interfaces" | "possibleTypes" | "inputFields"
    )
}

/// One operation's walk through its selections.
struct Walk<'a> {
    model: &'a CostModel,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// Each fragment's summary once walked (`None` while being walked: spreading it
    /// then is a cycle). Shared by the document's operations.
    fragments: &'a RefCell<HashMap<Name, Option<Summary>>>,
}

impl Walk<'_> {
    fn selection_set(
        &self,
        parent: &Name,
        set: &SelectionSet,
        nesting: usize,
    ) -> Result<Summary, Refusal> {
        if nesting > MAX_NESTING {
            return Err(too_deep());
        }
        let mut total = Summary::default();
        for selection in &set.items {
            let mut summary = match &selection.node {
                Selection::Field(field) => self.field(parent, &field.node, nesting)?,
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, nesting + 1)?
                }
                Selection::InlineFragment(inline) => {
                    let on = inline.node.type_condition.as_ref().map(|c| &c.node.on.node);
                    self.selection_set(
                        on.unwrap_or(parent),
                        &inline.node.selection_set.node,
                        nesting + 1,
                    )?
                }
            };
            if !matches!(selection.node, Selection::Field(_)) {
                summary.nodes = summary.nodes.saturating_add(1);
                summary.nesting += 1;
            }
            total.add(summary);
        }
        if total.introspection_lists > MAX_INTROSPECTION_LISTS {
            return Err(Refusal::TooComplex(format!(
                "introspection lists nest more than {MAX_INTROSPECTION_LISTS} deep"
            )));
        }
        Ok(total)
    }

    /// A fragment's summary, walked at its first spread (`nesting` is the spread's);
    /// later spreads reuse it.
    fn fragment(&self, name: &Name, nesting: usize) -> Result<Summary, Refusal> {
        let known = self.fragments.borrow().get(name).copied();
        if let Some(known) = known {
            let summary = known.ok_or_else(|| {
                Refusal::Invalid(format!("fragment \"{name}\" spreads itself (a cycle)"))
            })?;
            if nesting + summary.nesting > MAX_NESTING {
                return Err(too_deep());
            }
            return Ok(summary);
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Err(Refusal::Invalid(format!("unknown fragment \"{name}\"")));
        };
        self.fragments.borrow_mut().insert(name.clone(), None);
        let on = &fragment.node.type_condition.node.on.node;
        let summary = self.selection_set(on, &fragment.node.selection_set.node, nesting)?;
        self.fragments
            .borrow_mut()
            .insert(name.clone(), Some(summary));
        Ok(summary)
    }

    fn field(&self, parent: &Name, field: &Field, nesting: usize) -> Result<Summary, Refusal> {
        let name = &field.name.node;
        if name == "__typename" {
            return Ok(Summary {
                cost: 1,
                nodes: 1,
                ..Summary::default()
            });
        }
        let introspection = parent.starts_with("__") || name == "__schema" || name == "__type";
        let known = self.model.types.get(parent).and_then(|f| f.get(name));
        let child_type = match (known, name.as_str()) {
            (Some(known), _) => known.ty.clone(),
            (None, "__schema") => Name::new("__Schema"),
            (None, "__type") => Name::new("__Type"),
            // Introspection types are not in the model: the child type only decides
            // whether the walk stays in introspection.
            (None, _) if introspection => Name::new("__Type"),
            (None, _) => Name::new(""),
        };
        let children = if field.selection_set.node.items.is_empty() {
            Summary::default()
        } else {
            self.selection_set(&child_type, &field.selection_set.node, nesting + 1)?
        };
        let nesting_below = match field.selection_set.node.items.is_empty() {
            true => 0,
            false => children.nesting + 1,
        };
        if introspection {
            let lists = usize::from(is_introspection_list(name));
            return Ok(Summary {
                cost: children.cost.saturating_add(1),
                nodes: children.nodes.saturating_add(1),
                depth: 0,
                introspection_lists: children.introspection_lists + lists,
                nesting: nesting_below,
            });
        }
        let cost = match known {
            Some(k) if k.paged => {
                let first = self.first(field).max(0) as usize;
                first.saturating_mul(children.cost)
            }
            Some(k) if k.list && !parent.ends_with("Connection") => UNPAGED_LIST_BOUND
                .saturating_mul(children.cost)
                .saturating_add(1),
            _ => children.cost.saturating_add(1),
        };
        let search = if self.searches(field) { SEARCH_COST } else { 0 };
        let aggregates = name.ends_with("Aggregate")
            || (parent.ends_with("Aggregate") && matches!(name.as_str(), "groupBy" | "series"));
        let aggregate = if aggregates { AGGREGATE_COST } else { 0 };
        Ok(Summary {
            cost: cost.saturating_add(search).saturating_add(aggregate),
            nodes: children.nodes.saturating_add(1),
            depth: children.depth + 1,
            introspection_lists: children.introspection_lists,
            nesting: nesting_below,
        })
    }

    /// Whether the field's `filter` holds a `search`.
    fn searches(&self, field: &Field) -> bool {
        let Some(filter) = field.get_argument("filter") else {
            return false;
        };
        match self.constant(&filter.node) {
            Some(Value::Object(filter)) => filter
                .get("search")
                .is_some_and(|s| !matches!(s, Value::Null)),
            _ => false,
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
        match self.constant(&value.node) {
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|n| i32::try_from(*n).is_ok())
                .unwrap_or(DEFAULT_PAGE),
            _ => DEFAULT_PAGE,
        }
    }

    /// An argument's value with its variables replaced (`None` if one has no value).
    fn constant(&self, value: &async_graphql_value::Value) -> Option<Value> {
        value
            .clone()
            .into_const_with(|name| self.variable(&name).ok_or(()))
            .ok()
    }

    /// A variable's value in the request, or its default in the operation.
    fn variable(&self, name: &Name) -> Option<Value> {
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

/// The deepest nesting of brackets (`{`, `[`, `(`) in a document's text, outside strings
/// and comments, measured before the document is parsed: the parser recurses once per
/// level (a list literal nested a few thousand deep overflows its thread's stack).
/// `Err` as soon as it exceeds `max`.
pub fn text_nesting(text: &str, max: usize) -> Result<usize, Refusal> {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > max {
                    return Err(Refusal::TooComplex(format!(
                        "the document nests brackets more than {max} deep"
                    )));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::build_schema;

    fn model() -> CostModel {
        CostModel::of_sdl(&build_schema(None).sdl()).unwrap()
    }

    fn analyse(
        model: &CostModel,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<usize, Refusal> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        model.analyse(&document, &Variables::from_json(variables))
    }

    fn cost(model: &CostModel, query: &str, variables: serde_json::Value) -> usize {
        analyse(model, query, variables).unwrap()
    }

    fn too_complex(result: Result<usize, Refusal>) -> bool {
        matches!(result, Err(Refusal::TooComplex(_)))
    }

    #[test]
    fn fields_pages_unpaged_lists_and_searches_cost_what_they_can_return() {
        let m = model();
        let none = serde_json::json!({});
        // viewer + tenant + id; __typename counts like any field.
        assert_eq!(cost(&m, "{ viewer { tenant { id } } }", none.clone()), 3);
        assert_eq!(
            cost(&m, "{ __typename viewer { __typename } }", none.clone()),
            3
        );
        // A page: first × (nodes + id).
        let page = "query($n: Int) { customers(first: $n) { nodes { id } } }";
        assert_eq!(cost(&m, page, serde_json::json!({ "n": 7 })), 14);
        assert_eq!(
            cost(&m, page, serde_json::json!({})),
            20 * 2,
            "default page"
        );
        assert_eq!(
            cost(
                &m,
                "{ customers(last: 100) { nodes { id } } }",
                none.clone()
            ),
            200
        );
        assert_eq!(
            cost(
                &m,
                "{ customers(first: -3) { nodes { id } } }",
                none.clone()
            ),
            0
        );
        // An unpaged list costs its bound times its selection.
        let id = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            cost(
                &m,
                &format!("{{ customer(id: \"{id}\") {{ leads {{ id }} }} }}"),
                none.clone()
            ),
            1 + (1 + UNPAGED_LIST_BOUND)
        );
        // A search scans: its cost does not depend on the page.
        let search =
            "query($f: CustomerFilter) { customers(first: 1, filter: $f) { nodes { id } } }";
        assert_eq!(
            cost(&m, search, serde_json::json!({ "f": { "search": "a" } })),
            2 + SEARCH_COST
        );
        assert_eq!(
            cost(&m, search, serde_json::json!({ "f": { "search": null } })),
            2
        );
        assert_eq!(
            cost(
                &m,
                "{ customers(first: 1, filter: { search: \"a\" }) { nodes { id } } }",
                none.clone()
            ),
            2 + SEARCH_COST
        );
        // An aggregate reads every row its filter selects: its totals once, and each
        // groupBy (paged by its first) and series (an unpaged list) once more.
        assert_eq!(
            cost(
                &m,
                "{ customersAggregate { count sum { ltv } } }",
                none.clone()
            ),
            AGGREGATE_COST + 1 + (1 + 1) + 1
        );
        assert_eq!(
            cost(
                &m,
                "{ ordersAggregate { groupBy(by: [STATUS], first: 10) { count } series(interval: DAY, from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\") { count } } }",
                none.clone()
            ),
            AGGREGATE_COST + 1 + (AGGREGATE_COST + 10) + (AGGREGATE_COST + 1 + UNPAGED_LIST_BOUND)
        );
        // Fragments count where they are spread; aliases each count.
        assert_eq!(
            cost(&m, "fragment T on Query { viewer { tenant { id } } } { a: viewer { tenant { id } } ...T ...T }", none),
            9
        );
    }

    #[test]
    fn unpaged_chains_aliases_and_fragment_fan_out_are_refused_before_they_run() {
        let m = model();
        let none = serde_json::json!({});
        let id = "00000000-0000-0000-0000-000000000000";
        let chain = format!(
            "{{ customer(id: \"{id}\") {{ leads {{ customer {{ leads {{ customer {{ leads {{ id }} }} }} }} }} }} }}"
        );
        assert!(
            too_complex(analyse(&m, &chain, none.clone())),
            "unpaged chain"
        );
        let searches: String = (0..21)
            .map(|i| {
                format!(
                    "s{i}: customers(first: 1, filter: {{ search: \"x\" }}) {{ nodes {{ id }} }} "
                )
            })
            .collect();
        assert!(
            too_complex(analyse(&m, &format!("{{ {searches} }}"), none.clone())),
            "searches"
        );
        // Eight fragments, each spreading the next ten times: 10^8 leaves expanded.
        let mut fan = String::from("{ ...F0 }");
        for i in 0..8 {
            fan.push_str(&format!(
                " fragment F{i} on Query {{ {} }}",
                format!("...F{} ", i + 1).repeat(10)
            ));
        }
        fan.push_str(" fragment F8 on Query { __typename }");
        assert!(too_complex(analyse(&m, &fan, none.clone())), "fan-out");
        // 40 fragments each spreading the next twice: analysed in linear time.
        let mut doubling = String::from("{ ...F0 }");
        for i in 0..40 {
            doubling.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i + 1,
                i + 1
            ));
        }
        doubling.push_str(" fragment F40 on Query { viewer { tenant { id } } }");
        assert!(
            too_complex(analyse(&m, &doubling, none.clone())),
            "doubling"
        );
        let cyclic = "fragment A on Query { viewer { tenant { id } } ...B } fragment B on Query { ...A } { ...A }";
        assert!(matches!(
            analyse(&m, cyclic, none.clone()),
            Err(Refusal::Invalid(_))
        ));
        let deep = format!(
            "{{ {}id{} }}",
            "viewer { tenant { ".repeat(7),
            " } }".repeat(7)
        );
        assert!(too_complex(analyse(&m, &deep, none.clone())), "depth");
        let nested = format!(
            "{{ {}__typename{} }}",
            "... on Query { ".repeat(40),
            " }".repeat(40)
        );
        assert!(too_complex(analyse(&m, &nested, none)), "nesting");
    }

    #[test]
    fn graphiqls_introspection_query_is_accepted_and_nested_introspection_lists_are_not() {
        let m = model();
        let none = serde_json::json!({});
        let analysis = analyse(&m, INTROSPECTION, none.clone()).expect("accepted");
        assert!(analysis < MAX_COST / 10, "{analysis}");
        let nested =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        assert!(too_complex(analyse(&m, nested, none)));
    }

    #[test]
    fn text_nesting_skips_strings_and_comments_and_stops_at_its_bound() {
        assert_eq!(text_nesting("{ a(b: [[1]]) }", 10), Ok(4));
        assert_eq!(text_nesting("{ a(b: \"[[[[\") # {{{{\n }", 10), Ok(2));
        assert_eq!(
            text_nesting("{ a(b: \"\"\" {{{ \\\"\"\" [[[ \"\"\") }", 10),
            Ok(2)
        );
        let hostile = format!(
            "{{ a(b: {}1{}) }}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            text_nesting(&hostile, 64),
            Err(Refusal::TooComplex(_))
        ));
    }

    /// graphql-js 16's `getIntrospectionQuery()` (what GraphiQL sends).
    const INTROSPECTION: &str = include_str!("../../tests/integration/introspection.graphql");
}
