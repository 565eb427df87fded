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
    /// One `HashMap<K, Option<V>>` per key and value type (`None`: known to be absent).
    entries: Mutex<TypeMap>,
}

impl Prefetched {
    fn entries(&self) -> std::sync::MutexGuard<'_, TypeMap> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put<K, V>(&self, rows: impl IntoIterator<Item = (K, Option<V>)>)
    where
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
    {
        self.entries().entry::<HashMap<K, Option<V>>>().extend(rows);
    }

    /// `Some(value)` when `key` was filed (`value` is `None` if the row is known not to
    /// exist), `None` when it was not.
    pub fn get<K, V>(&self, key: &K) -> Option<Option<V>>
    where
        K: Hash + Eq + 'static,
        V: Clone + 'static,
    {
        self.entries()
            .get::<HashMap<K, Option<V>>>()?
            .get(key)
            .cloned()
    }

    pub fn clear(&self) {
        self.entries().clear();
    }
}

/// One value of each type, created empty on first use (the rows filed here, the items a
/// read group's members wait with).
#[derive(Default)]
pub struct TypeMap(HashMap<TypeId, Box<dyn Any + Send>>);

impl TypeMap {
    /// The value of type `T`, empty if there was none.
    pub fn entry<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("a value is kept under its own type's id")
    }

    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.0.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    pub fn clear(&mut self) {
        self.0.clear();
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
