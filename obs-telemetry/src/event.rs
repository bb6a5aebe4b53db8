//! Events: typed ones that declare their properties, and free-form ones.
//!
//! A typed event is a Rust type implementing [`Event`]: a stable name (`test.run.completed`),
//! a schema version and the list of properties it declares. When the recorder serialises it,
//! every property that is not declared is dropped (fail closed: adding a field to the struct
//! does not start storing it until it is declared), and the declared string values still pass
//! through the PII scrubber. The [`event!`](crate::event!) macro writes the struct, its
//! serialisation and the declaration in one go.
//!
//! A [`FreeformEvent`] carries arbitrary JSON properties; it goes through the scrubber's full
//! rule set (key rules and every value detector).
//!
//! ```
//! use obs_telemetry::{event, Event, FreeformEvent};
//!
//! event! {
//!     /// A test run finished.
//!     pub struct TestRunCompleted: "test.run.completed" {
//!         pub repo_id: String,
//!         pub run_id: String,
//!         pub test_count: u64,
//!     }
//! }
//!
//! assert_eq!(TestRunCompleted::NAME, "test.run.completed");
//! assert_eq!(TestRunCompleted::PROPERTIES, &["repo_id", "run_id", "test_count"]);
//!
//! let free = FreeformEvent::new("page.viewed").property("path_template", "/repos/{id}");
//! assert_eq!(free.name(), "page.viewed");
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

/// A typed telemetry event: a stable name, a schema version and its declared properties.
///
/// Serialisation must produce a JSON object; keys not listed in [`PROPERTIES`](Self::PROPERTIES)
/// are dropped before storage. Use the [`event!`](crate::event!) macro to keep the struct and
/// the declaration in sync.
pub trait Event: Serialize + Send + 'static {
    /// Stable event name, e.g. `test.run.completed`.
    const NAME: &'static str;
    /// The properties this event may store; everything else is dropped.
    const PROPERTIES: &'static [&'static str];
    /// Version of the property schema, stored with every event.
    const SCHEMA_VERSION: u32 = 1;
}

/// Defines a typed [`Event`]: a struct, its serialisation, and the declared properties
/// (exactly the struct's fields, under their Rust names).
///
/// ```
/// obs_telemetry::event! {
///     /// A repository was connected.
///     pub struct RepoConnected: "repo.connected", version = 2 {
///         /// Repository id (structural, not personal).
///         pub repo_id: String,
///         pub provider: &'static str,
///     }
/// }
/// use obs_telemetry::Event;
/// assert_eq!(RepoConnected::SCHEMA_VERSION, 2);
/// ```
#[macro_export]
macro_rules! event {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident : $event_name:literal $(, version = $version:literal)? {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field : $ty ),*
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
            where
                S: $crate::__private::serde::Serializer,
            {
                use $crate::__private::serde::ser::SerializeMap as _;
                let mut map = serializer.serialize_map(::core::option::Option::Some(
                    <Self as $crate::Event>::PROPERTIES.len(),
                ))?;
                $( map.serialize_entry(::core::stringify!($field), &self.$field)?; )*
                map.end()
            }
        }

        impl $crate::Event for $name {
            const NAME: &'static str = $event_name;
            const PROPERTIES: &'static [&'static str] = &[$(::core::stringify!($field)),*];
            $(const SCHEMA_VERSION: u32 = $version;)?
        }
    };
}

/// An event with arbitrary JSON properties. Every property goes through the scrubber's full
/// rule set before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeformEvent {
    name: String,
    properties: Map<String, Value>,
    schema_version: u32,
}

impl FreeformEvent {
    /// A free-form event named `name` with no properties.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            properties: Map::new(),
            schema_version: 1,
        }
    }

    /// A free-form event from a JSON object (anything else becomes an empty property set).
    pub fn from_value(name: impl Into<String>, properties: Value) -> Self {
        let properties = match properties {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            name: name.into(),
            properties,
            schema_version: 1,
        }
    }

    /// Adds a property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the schema version stored with the event (default 1).
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The properties, before scrubbing.
    pub fn properties(&self) -> &Map<String, Value> {
        &self.properties
    }

    pub(crate) fn into_parts(self) -> (String, Map<String, Value>, u32) {
        (self.name, self.properties, self.schema_version)
    }
}

/// Object-safe view of an [`Event`], so the queue can hold any event type.
pub(crate) trait ErasedEvent: Send {
    fn name(&self) -> &'static str;
    fn declared(&self) -> &'static [&'static str];
    fn schema_version(&self) -> u32;
    fn to_value(&self) -> serde_json::Result<Value>;
}

impl<E: Event> ErasedEvent for E {
    fn name(&self) -> &'static str {
        E::NAME
    }
    fn declared(&self) -> &'static [&'static str] {
        E::PROPERTIES
    }
    fn schema_version(&self) -> u32 {
        E::SCHEMA_VERSION
    }
    fn to_value(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// Keeps only the declared keys of `value` (an object); returns how many keys were dropped.
/// A non-object value is replaced by an empty object (and counts as one dropped property).
pub(crate) fn retain_declared(value: &mut Value, declared: &[&str]) -> u64 {
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|k, _| declared.contains(&k.as_str()));
            (before - map.len()) as u64
        }
        Value::Null => {
            *value = Value::Object(Map::new());
            0
        }
        _ => {
            *value = Value::Object(Map::new());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::event! {
        /// test
        struct Sample: "sample.happened", version = 3 {
            a: u32,
            b: String,
        }
    }

    #[derive(Serialize)]
    struct Leaky {
        keep: u32,
        email: String,
    }
    impl Event for Leaky {
        const NAME: &'static str = "leaky";
        const PROPERTIES: &'static [&'static str] = &["keep"];
    }

    #[test]
    fn macro_declares_fields_and_serialises_them() {
        assert_eq!(Sample::PROPERTIES, &["a", "b"]);
        assert_eq!(Sample::SCHEMA_VERSION, 3);
        let v = serde_json::to_value(Sample {
            a: 1,
            b: "x".into(),
        })
        .unwrap();
        assert_eq!(v, json!({"a": 1, "b": "x"}));
    }

    #[test]
    fn undeclared_properties_are_dropped() {
        let e = Leaky {
            keep: 7,
            email: "a@b.example".into(),
        };
        let mut v = ErasedEvent::to_value(&e).unwrap();
        assert_eq!(retain_declared(&mut v, e.declared()), 1);
        assert_eq!(v, json!({"keep": 7}));
    }

    #[test]
    fn non_objects_become_empty() {
        let mut v = json!([1, 2]);
        assert_eq!(retain_declared(&mut v, &["a"]), 1);
        assert_eq!(v, json!({}));
    }
}
