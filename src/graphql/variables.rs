//! Which operations may skip async-graphql's full validation of their document.
//!
//! The full validation (its `Strict` mode) checks the document against the schema, and
//! the values of the variables where the document uses them (`ArgumentsOfCorrectType`);
//! it was 15 % of the server's CPU for a `customer(id)` whose document never changes.
//! Dashboards send the same few documents again and again with new variables, so a
//! document that has passed it once runs on a schema in `Fast` mode (fragment cycles
//! only) as long as each of its variables holds a value the full
//! validation could not refuse wherever the document uses it: a built-in scalar or an
//! enum value of the declared type, or a list of them, never null. The variable's
//! declared type is the argument's wherever it is used (the document passed the rule that
//! says so), and every value admitted here passes async-graphql's own checks of those
//! types. Anything else (input objects, custom scalars, nulls, negative integers) goes
//! through the full validation again, which answers exactly as before. The limits
//! (cost, size, depth, nesting, input values) are not part of either validation: the
//! request guard checks them before either schema runs ([`super::guard`]), so skipping
//! the validation skips none of them.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, OperationDefinition, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Value, Variables};

/// The schema's enum types and their values, from its SDL.
pub struct PlainVariables {
    enums: HashMap<Name, HashSet<Name>>,
}

impl PlainVariables {
    /// The enum types of a parsed schema.
    pub fn of_schema(document: &ServiceDocument) -> Self {
        let enums = document
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                TypeSystemDefinition::Type(ty) => match &ty.node.kind {
                    TypeKind::Enum(values) => Some((
                        ty.node.name.node.clone(),
                        values
                            .values
                            .iter()
                            .map(|v| v.node.value.node.clone())
                            .collect(),
                    )),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        Self { enums }
    }

    /// Whether every variable of `operation` given in `variables` holds a plain value of
    /// its declared type (variables not given are not checked by the full validation
    /// either).
    pub fn are_plain(&self, operation: &OperationDefinition, variables: &Variables) -> bool {
        operation.variable_definitions.iter().all(|definition| {
            let definition = &definition.node;
            variables
                .get(&definition.name.node)
                .is_none_or(|value| self.is_plain(&definition.var_type.node, value))
        })
    }

    fn is_plain(&self, ty: &Type, value: &Value) -> bool {
        match (&ty.base, value) {
            (_, Value::Null) => false,
            (BaseType::List(item), Value::List(items)) => {
                items.iter().all(|value| self.is_plain(item, value))
            }
            // A single value where a list is declared is coerced to a list of one.
            (BaseType::List(item), value) => self.is_plain(item, value),
            (BaseType::Named(name), value) => match (name.as_str(), value) {
                ("ID" | "String", Value::String(_)) => true,
                ("ID" | "Int", Value::Number(n)) => {
                    n.as_u64().is_some_and(|n| i32::try_from(n).is_ok())
                }
                ("Float", Value::Number(_)) => true,
                ("Boolean", Value::Boolean(_)) => true,
                (_, Value::String(value)) => self.is_enum_value(name, value),
                (_, Value::Enum(value)) => self.is_enum_value(name, value),
                _ => false,
            },
        }
    }

    fn is_enum_value(&self, ty: &str, value: &str) -> bool {
        self.enums
            .get(ty)
            .is_some_and(|values| values.contains(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SDL: &str = "
        enum Segment { VIP REGULAR }
        scalar DateTime
        input Filter { segment: Segment }
        type Query { a(id: ID!, n: Int, f: Float, b: Boolean, s: String, seg: [Segment!], at: DateTime, filter: Filter): Int }
    ";

    fn plain(variables: serde_json::Value) -> bool {
        let document = async_graphql::parser::parse_query(
            "query($id: ID!, $n: Int, $f: Float, $b: Boolean, $s: String, $seg: [Segment!], \
             $at: DateTime, $filter: Filter) { a(id: $id, n: $n, f: $f, b: $b, s: $s, seg: $seg, \
             at: $at, filter: $filter) }",
        )
        .unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        PlainVariables::of_schema(&async_graphql::parser::parse_schema(SDL).unwrap())
            .are_plain(&operation.node, &Variables::from_json(variables))
    }

    #[test]
    fn built_in_scalars_and_enum_values_of_the_declared_type_are_plain() {
        assert!(plain(json!({})), "variables not given are not checked");
        assert!(plain(json!({
            "id": "7c1f", "n": 100, "f": 1.5, "b": true, "s": "x",
            "seg": ["VIP", "REGULAR"], "ignored": { "any": "thing" }
        })));
        assert!(
            plain(json!({ "id": 42, "seg": "VIP" })),
            "an ID may be an integer; one value for a list"
        );
    }

    #[test]
    fn anything_the_full_validation_might_refuse_is_not() {
        for variables in [
            json!({ "id": null }),
            json!({ "n": null }),
            json!({ "n": "1" }),
            json!({ "n": -1 }),
            json!({ "n": 2_147_483_648_i64 }),
            json!({ "n": 1.5 }),
            json!({ "f": "1.5" }),
            json!({ "b": 1 }),
            json!({ "s": 1 }),
            json!({ "id": true }),
            json!({ "seg": ["VIP", "GOLD"] }),
            json!({ "seg": ["VIP", null] }),
            json!({ "seg": [1] }),
            json!({ "at": "2026-11-23T00:00:00Z" }),
            json!({ "filter": { "segment": "VIP" } }),
        ] {
            assert!(!plain(variables.clone()), "{variables}");
        }
    }
}
