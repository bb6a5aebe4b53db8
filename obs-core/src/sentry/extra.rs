//! [`IntoExtra`]: key-value data for events, breadcrumbs and contexts, converted only after
//! the bridge knows a client is bound.

use std::collections::BTreeMap;

use serde_json::Value;

/// Key-value data attached to an event (`extra`), a breadcrumb (`data`) or a context.
///
/// Implemented for `()` (nothing), arrays, slices and vectors of `(key, value)` pairs whose
/// key is `Into<String>` and value `Into<serde_json::Value>`, and for JSON maps. Conversion
/// happens only when an event is actually built, so passing `[("order_id", id)]` costs
/// nothing while Sentry is disabled.
///
/// ```
/// use obs_core::sentry::IntoExtra;
/// let mut map = std::collections::BTreeMap::new();
/// [("rows", 3)].into_extra(&mut map);
/// vec![("table", "orders")].into_extra(&mut map);
/// assert_eq!(map["rows"], 3);
/// assert_eq!(map["table"], "orders");
/// ```
pub trait IntoExtra {
    /// Adds the entries to `map` (later entries win).
    fn into_extra(self, map: &mut BTreeMap<String, Value>);
}

impl IntoExtra for () {
    #[inline]
    fn into_extra(self, _map: &mut BTreeMap<String, Value>) {}
}

impl<K, V, const N: usize> IntoExtra for [(K, V); N]
where
    K: Into<String>,
    V: Into<Value>,
{
    fn into_extra(self, map: &mut BTreeMap<String, Value>) {
        map.extend(self.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl<K, V> IntoExtra for Vec<(K, V)>
where
    K: Into<String>,
    V: Into<Value>,
{
    fn into_extra(self, map: &mut BTreeMap<String, Value>) {
        map.extend(self.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl<K, V> IntoExtra for &[(K, V)]
where
    K: Into<String> + Clone,
    V: Into<Value> + Clone,
{
    fn into_extra(self, map: &mut BTreeMap<String, Value>) {
        map.extend(self.iter().cloned().map(|(k, v)| (k.into(), v.into())));
    }
}

impl IntoExtra for BTreeMap<String, Value> {
    fn into_extra(mut self, map: &mut BTreeMap<String, Value>) {
        map.append(&mut self);
    }
}

impl IntoExtra for serde_json::Map<String, Value> {
    fn into_extra(self, map: &mut BTreeMap<String, Value>) {
        map.extend(self);
    }
}
