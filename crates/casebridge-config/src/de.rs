//! Lenient deserializers for values that may come from environment variables.
//!
//! figment parses each variable's text as a value, so `CASEBRIDGE_LISTEN=8080` arrives as a number
//! and `CASEBRIDGE_ALLOW_PRIVATE_NETWORKS=10.0.0.0/8,192.168.0.0/16` as one string. These helpers
//! accept what an operator would reasonably write and leave judging the content to validation.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A string, or a scalar taken as its text (so a number-looking value still reaches validation,
/// which can say what is wrong with it).
struct StringLike(String);

impl<'de> Deserialize<'de> for StringLike {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringLikeVisitor;

        impl Visitor<'_> for StringLikeVisitor {
            type Value = StringLike;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringLike, E> {
                Ok(StringLike(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<StringLike, E> {
                Ok(StringLike(v))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StringLike, E> {
                Ok(StringLike(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringLike, E> {
                Ok(StringLike(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringLike, E> {
                Ok(StringLike(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StringLike, E> {
                Ok(StringLike(v.to_string()))
            }
        }

        deserializer.deserialize_any(StringLikeVisitor)
    }
}

pub(crate) fn string<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    StringLike::deserialize(deserializer).map(|s| T::from(s.0))
}

pub(crate) fn opt_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    string(deserializer).map(Some)
}

/// A list given either as a sequence (TOML array) or as one comma-separated string (environment
/// variable). Items are trimmed and empty items dropped, so `a, b,` is `[a, b]` and an empty
/// string is an empty list.
pub(crate) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T: From<String>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a comma-separated string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            Ok(v.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| T::from(item.to_owned()))
                .collect())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(StringLike(item)) = seq.next_element()? {
                let item = item.trim();
                if !item.is_empty() {
                    items.push(T::from(item.to_owned()));
                }
            }
            Ok(items)
        }
    }

    deserializer.deserialize_any(ListVisitor(PhantomData))
}
