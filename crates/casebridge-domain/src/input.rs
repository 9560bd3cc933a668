//! Rules every piece of text from outside obeys, whatever carries it (a JSON body, a query
//! string, a form, a CRM's webhook), so that ambiguous or unstorable input is refused with the
//! field named instead of being resolved silently.
//!
//! - No NUL characters: PostgreSQL cannot store them in text, and no person types one.
//! - No repeated field with different values: `{"name": "a", "name": "b"}` or `?limit=1&limit=2`
//!   has no single meaning. Repeats with equal values are accepted.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ValidationError;

const NUL_MESSAGE: &str = "must not contain NUL characters (\\u0000)";

/// The earliest and latest times accepted from outside (years 1900 through 2999): a date
/// outside them is a typo, not an appointment or a call.
pub const EARLIEST_YEAR: i16 = 1900;
pub const LATEST_YEAR: i16 = 2999;

/// The longest URL accepted for a destination (a webhook's `url`).
pub const MAX_URL_CHARS: usize = 2048;

/// Refuses a time outside [`EARLIEST_YEAR`]..=[`LATEST_YEAR`] (in UTC), naming `field`.
pub fn check_time(field: &str, t: jiff::Timestamp) -> Result<jiff::Timestamp, ValidationError> {
    let year = t.to_zoned(jiff::tz::TimeZone::UTC).year();
    if (EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
        Ok(t)
    } else {
        Err(ValidationError::single(
            field,
            format!("must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"),
        ))
    }
}

/// A field name fit for a message: any NUL in it is shown as `\u0000`.
pub fn printable(name: &str) -> String {
    name.replace('\0', "\\u0000")
}

/// Refuses a NUL character in `value`, naming `field`.
pub fn check_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::single(printable(field), NUL_MESSAGE));
    }
    Ok(())
}

/// Name/value pairs (a query string, a form): refuses a NUL in a name or value and a name given
/// twice with different values, naming the field.
pub fn check_pairs(pairs: &[(String, String)]) -> Result<(), ValidationError> {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if k.contains('\0') {
            return Err(ValidationError::single(
                printable(k),
                "the name has a NUL character",
            ));
        }
        check_text(k, v)?;
        if pairs[..i].iter().any(|(pk, pv)| pk == k && pv != v) {
            return Err(conflict(k));
        }
    }
    Ok(())
}

/// The error for a field given twice with different values.
pub fn conflict(field: &str) -> ValidationError {
    ValidationError::single(
        printable(field),
        "is given more than once with different values",
    )
}

/// Why a JSON document was refused by [`strict_json`].
#[derive(Debug)]
pub enum JsonInputError {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON, but with a NUL in a string or a key repeated with a different value.
    Invalid(ValidationError),
}

/// Parses a JSON document, refusing a NUL character in any string or key and an object key
/// repeated with a different value. The field is named by its path (`custom_fields.note`,
/// `items[2].name`), as serde names the fields it refuses.
pub fn strict_json(bytes: &[u8]) -> Result<Value, JsonInputError> {
    let found = RefCell::new(None);
    let seed = Node {
        path: String::new(),
        found: &found,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, found.into_inner()) {
        (_, Some(invalid)) => Err(JsonInputError::Invalid(invalid)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(JsonInputError::Syntax(e)),
    }
}

/// One value of the document at `path`; the first refusal is kept in `found`.
struct Node<'a> {
    path: String,
    found: &'a RefCell<Option<ValidationError>>,
}

impl Node<'_> {
    fn child(&self, part: &str) -> String {
        if self.path.is_empty() {
            part.to_owned()
        } else if part.starts_with('[') {
            format!("{}{part}", self.path)
        } else {
            format!("{}.{part}", self.path)
        }
    }

    fn refuse<E: de::Error>(&self, e: ValidationError) -> E {
        *self.found.borrow_mut() = Some(e);
        E::custom("refused")
    }

    fn field(&self) -> &str {
        if self.path.is_empty() {
            "body"
        } else {
            &self.path
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match check_text(self.field(), v) {
            Ok(()) => Ok(Value::String(v.to_owned())),
            Err(e) => Err(self.refuse(e)),
        }
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.visit_str(&v)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Node {
            path: self.child(&format!("[{}]", out.len())),
            found: self.found,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.child(&key);
            if key.contains('\0') {
                return Err(self.refuse(ValidationError::single(
                    printable(&path),
                    "the name has a NUL character",
                )));
            }
            let value = map.next_value_seed(Node {
                path: path.clone(),
                found: self.found,
            })?;
            match out.get(&key) {
                Some(earlier) if *earlier != value => return Err(self.refuse(conflict(&path))),
                _ => {
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> (String, String) {
        match strict_json(body.as_bytes()) {
            Err(JsonInputError::Invalid(v)) => {
                (v.errors[0].field.clone(), v.errors[0].message.clone())
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn nul_characters_are_refused_with_their_path() {
        assert_eq!(refused(r#"{"name": "a\u0000b"}"#).0, "name");
        assert_eq!(
            refused(r#"{"custom_fields": {"note": "\u0000"}}"#).0,
            "custom_fields.note"
        );
        assert_eq!(
            refused(r#"{"items": [{"x": 1}, {"y": "\u0000"}]}"#).0,
            "items[1].y"
        );
        assert_eq!(refused(r#"{"a\u0000": 1}"#).0, "a\\u0000");
        assert_eq!(refused(r#""\u0000""#).0, "body");
        assert!(refused(r#"{"name": "\u0000"}"#).1.contains("NUL"));
    }

    #[test]
    fn repeated_keys_must_agree() {
        assert_eq!(refused(r#"{"name": "a", "name": "b"}"#).0, "name");
        assert_eq!(refused(r#"{"c": {"x": 1, "x": {"y": 2}}}"#).0, "c.x");
        let v = strict_json(br#"{"name": "a", "name": "a", "n": 1}"#).unwrap();
        assert_eq!(v, serde_json::json!({"name": "a", "n": 1}));
    }

    #[test]
    fn syntax_errors_are_reported_as_such() {
        for bad in ["{", "{\"a\": }", "[1] 2", ""] {
            assert!(
                matches!(strict_json(bad.as_bytes()), Err(JsonInputError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            strict_json(br#"{"a": [1, 2.5, true, null, "x"]}"#).unwrap(),
            serde_json::json!({"a": [1, 2.5, true, null, "x"]})
        );
    }

    #[test]
    fn times_are_kept_to_a_sensible_range() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert!(check_time("at", t("1900-01-01T00:00:00Z")).is_ok());
        assert!(check_time("at", t("2999-12-31T23:59:59Z")).is_ok());
        for bad in [
            "0000-01-01T00:00:00Z",
            "1899-12-31T23:59:59Z",
            "3000-01-01T00:00:00Z",
        ] {
            assert_eq!(
                check_time("at", t(bad)).unwrap_err().errors[0].field,
                "at",
                "{bad}"
            );
        }
    }

    #[test]
    fn pairs_refuse_nul_and_conflicting_repeats() {
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(check_pairs(&p(&[("limit", "1"), ("limit", "1")])).is_ok());
        assert_eq!(
            check_pairs(&p(&[("limit", "1"), ("cursor", "x"), ("limit", "2")]))
                .unwrap_err()
                .errors[0]
                .field,
            "limit"
        );
        assert_eq!(
            check_pairs(&p(&[("q", "a\0")])).unwrap_err().errors[0].field,
            "q"
        );
    }
}
