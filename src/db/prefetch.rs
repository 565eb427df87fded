//! Rows a request has already read in its snapshot, filed under the loader keys that would
//! have fetched them. A resolver that can see what its children will ask for (the customer
//! 360 reads every relation in one statement) files the rows here; the children's
//! [`RequestContext::load_one`](crate::graphql::context::RequestContext::load_one) finds
//! them and skips their statements. A key not filed goes to the loader as usual.
//!
//! Only a request's handle has one, and every write clears it: a write ends the read
//! snapshot, so rows read before it may be stale.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Default)]
pub struct Prefetched {
    /// `TypeId` of the key type → `HashMap<K, Option<V>>` (`None`: known to be absent).
    entries: Mutex<HashMap<TypeId, Box<dyn Any + Send>>>,
}

impl Prefetched {
    pub fn put<K, V>(&self, rows: impl IntoIterator<Item = (K, Option<V>)>)
    where
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let typed = entries
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(HashMap::<K, Option<V>>::new()));
        if let Some(typed) = typed.downcast_mut::<HashMap<K, Option<V>>>() {
            typed.extend(rows);
        }
    }

    /// `Some(value)` when `key` was filed (`value` is `None` if the row is known not to
    /// exist), `None` when it was not.
    pub fn get<K, V>(&self, key: &K) -> Option<Option<V>>
    where
        K: Hash + Eq + 'static,
        V: Clone + 'static,
    {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&TypeId::of::<K>())?
            .downcast_ref::<HashMap<K, Option<V>>>()?
            .get(key)
            .cloned()
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filed_rows_are_found_by_key_until_cleared() {
        let prefetched = Prefetched::default();
        prefetched.put([(1_u32, Some("one")), (2, None)]);
        assert_eq!(prefetched.get::<u32, &str>(&1), Some(Some("one")));
        assert_eq!(prefetched.get::<u32, &str>(&2), Some(None), "known absent");
        assert_eq!(prefetched.get::<u32, &str>(&3), None, "not filed");
        assert_eq!(prefetched.get::<u64, &str>(&1), None, "another key type");
        prefetched.clear();
        assert_eq!(prefetched.get::<u32, &str>(&1), None);
    }
}
