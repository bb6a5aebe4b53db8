//! Label sets as types: fixed-cardinality label values are enums ([`label_enum!`](crate::label_enum)) and a label
//! set is a struct of them ([`label_set!`](crate::label_set)). Every combination maps to a dense index, so a
//! family's storage is a flat array and an update is `values[labels.index()]`.
//!
//! ```
//! obs_metrics::label_enum! {
//!     /// Outcome of a generation.
//!     pub enum Status { Success = "success", Failure = "failure" }
//! }
//! obs_metrics::label_enum! {
//!     /// Kind of asset.
//!     pub enum AssetType { Model = "model", Texture = "texture", Audio = "audio" }
//! }
//! obs_metrics::label_set! {
//!     /// Labels of `asset_generations_total`.
//!     pub struct Generation { kind as "type": AssetType, status: Status }
//! }
//! use obs_metrics::LabelSet;
//! assert_eq!(Generation::CARDINALITY, 6);
//! let l = Generation { kind: AssetType::Audio, status: Status::Failure };
//! assert_eq!(l.index(), 5);
//! assert_eq!(Generation::NAMES, &["type", "status"]);
//! assert_eq!(Generation::value_at(5, 0), "audio");
//! ```

/// A fixed-cardinality label value: an enum whose variants map to dense indices.
///
/// Implement with [`label_enum!`](crate::label_enum).
pub trait LabelValue: Copy + Send + Sync + 'static {
    /// The label value of every variant, in index order.
    const VALUES: &'static [&'static str];
    /// Every variant, in index order.
    const ALL: &'static [Self];
    /// Dense index of this value (`0..VALUES.len()`).
    fn index(self) -> usize;
    /// The label value as exposed.
    fn as_str(self) -> &'static str {
        Self::VALUES[self.index()]
    }
    /// The variant whose label value is `s`.
    fn from_label(s: &str) -> Option<Self> {
        Self::VALUES
            .iter()
            .position(|v| *v == s)
            .map(|i| Self::ALL[i])
    }
}

/// A set of fixed-cardinality labels; every combination has a dense index.
///
/// Implement with [`label_set!`](crate::label_set); `()` is the empty set (one series).
pub trait LabelSet: Copy + Send + Sync + 'static {
    /// Label names, in order.
    const NAMES: &'static [&'static str];
    /// Allowed values of each label, in the order of [`LabelSet::NAMES`].
    const VALUES: &'static [&'static [&'static str]];
    /// Number of label combinations (series) — product of the value counts.
    const CARDINALITY: usize;
    /// Dense index of this combination (row-major over the labels).
    fn index(&self) -> usize;
    /// Value of label `label` in the series with dense index `series`.
    fn value_at(series: usize, label: usize) -> &'static str {
        let mut stride = 1;
        let mut i = Self::VALUES.len();
        while i > label + 1 {
            i -= 1;
            stride *= Self::VALUES[i].len();
        }
        let vals = Self::VALUES[label];
        vals[(series / stride) % vals.len()]
    }
}

impl LabelSet for () {
    const NAMES: &'static [&'static str] = &[];
    const VALUES: &'static [&'static [&'static str]] = &[];
    const CARDINALITY: usize = 1;
    #[inline]
    fn index(&self) -> usize {
        0
    }
}

/// Most labels a [`LabelSet`] may have (checked at compile time by [`label_set!`](crate::label_set)).
pub const MAX_LABELS: usize = 16;

#[doc(hidden)]
pub const fn cardinality(values: &[&[&str]]) -> usize {
    let mut n = 1;
    let mut i = 0;
    while i < values.len() {
        n *= values[i].len();
        i += 1;
    }
    n
}

/// Defines a fixed-cardinality label value enum: `Variant = "value"` pairs.
///
/// ```
/// obs_metrics::label_enum! {
///     /// AI provider.
///     pub enum Provider { OpenAi = "openai", Anthropic = "anthropic" }
/// }
/// use obs_metrics::LabelValue;
/// assert_eq!(Provider::Anthropic.as_str(), "anthropic");
/// assert_eq!(Provider::from_label("openai"), Some(Provider::OpenAi));
/// ```
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $( $(#[$vmeta])* #[doc = concat!("`", $value, "`")] $variant ),+ }

        impl $crate::LabelValue for $name {
            const VALUES: &'static [&'static str] = &[$($value),+];
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            #[inline]
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// Defines a label set struct whose fields are [`LabelValue`] enums.
///
/// A field's label name is the field name, or the string after `as` (for names that are Rust
/// keywords: `kind as "type": AssetType`). Label names are checked at compile time.
///
/// ```
/// obs_metrics::label_enum! {
///     /// Direction.
///     pub enum Dir { Up = "up", Down = "down" }
/// }
/// obs_metrics::label_set! {
///     /// One label.
///     pub struct DirLabels { direction: Dir }
/// }
/// use obs_metrics::LabelSet;
/// assert_eq!(DirLabels { direction: Dir::Down }.index(), 1);
/// ```
#[macro_export]
macro_rules! label_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $( $field:ident $(as $lname:literal)? : $ty:ty ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis struct $name { $( #[allow(missing_docs)] pub $field: $ty ),+ }

        impl $crate::LabelSet for $name {
            const NAMES: &'static [&'static str] = &[$( $crate::__label_name!($field $($lname)?) ),+];
            const VALUES: &'static [&'static [&'static str]] =
                &[$( <$ty as $crate::LabelValue>::VALUES ),+];
            const CARDINALITY: usize = $crate::labels::cardinality(Self::VALUES);
            #[inline]
            fn index(&self) -> usize {
                let mut i = 0usize;
                $(
                    i = i * <$ty as $crate::LabelValue>::VALUES.len()
                        + $crate::LabelValue::index(self.$field);
                )+
                i
            }
        }
        const _: () = {
            $( $crate::naming::assert_label_name($crate::__label_name!($field $($lname)?)); )+
            assert!(
                [$(stringify!($field)),+].len() <= $crate::labels::MAX_LABELS,
                "a label set has at most 16 labels"
            );
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __label_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $lname:literal) => {
        $lname
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::label_enum! {
        /// a
        pub(crate) enum A { X = "x", Y = "y" }
    }
    crate::label_enum! {
        /// b
        pub(crate) enum B { P = "p", Q = "q", R = "r" }
    }
    crate::label_set! {
        /// set
        pub(crate) struct AB { a: A, b as "bee": B }
    }

    #[test]
    fn dense_indices_round_trip() {
        assert_eq!(AB::CARDINALITY, 6);
        let mut seen = [false; 6];
        for a in [A::X, A::Y] {
            for b in [B::P, B::Q, B::R] {
                let l = AB { a, b };
                let i = l.index();
                assert!(!seen[i]);
                seen[i] = true;
                assert_eq!(AB::value_at(i, 0), a.as_str());
                assert_eq!(AB::value_at(i, 1), b.as_str());
            }
        }
        assert_eq!(AB::NAMES, &["a", "bee"]);
    }
}
