//! A list's optional filters: `query.filter_some(filter.status, |s| table::status.eq(s))`
//! narrows the query when the value is given and leaves it as it is when it is not (the
//! shape of every `…Filter` input).

use diesel::query_dsl::methods::FilterDsl;

pub trait FilterSome: Sized {
    /// `self.filter(predicate(value))` when `value` is `Some`, else `self`.
    fn filter_some<V, P>(self, value: Option<V>, predicate: impl FnOnce(V) -> P) -> Self
    where
        Self: FilterDsl<P, Output = Self>;
}

impl<Q> FilterSome for Q {
    fn filter_some<V, P>(self, value: Option<V>, predicate: impl FnOnce(V) -> P) -> Self
    where
        Self: FilterDsl<P, Output = Self>,
    {
        match value {
            Some(value) => FilterDsl::filter(self, predicate(value)),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FilterSome;
    use crate::db::schema::reward_redemptions as r;
    use diesel::pg::Pg;
    use diesel::prelude::*;

    fn sql(status: Option<&str>, quantity: Option<i32>) -> String {
        let query = r::table
            .select(r::id)
            .into_boxed::<Pg>()
            .filter_some(status.map(str::to_owned), |s| r::status.eq(s))
            .filter_some(quantity, |q| r::quantity.ge(q));
        diesel::debug_query(&query).to_string()
    }

    #[test]
    fn a_given_value_narrows_the_query_and_a_missing_one_leaves_it() {
        let none = sql(None, None);
        assert!(!none.contains("WHERE"), "{none}");
        let status = sql(Some("pending"), None);
        assert!(
            status.contains(r#"WHERE ("reward_redemptions"."status" = $1)"#),
            "{status}"
        );
        let both = sql(Some("pending"), Some(2));
        assert!(
            both.contains(r#"("reward_redemptions"."status" = $1) AND ("reward_redemptions"."quantity" >= $2)"#),
            "{both}"
        );
    }
}
