//! Law Ruler's inbound webhook bodies (LR2–LR6), parsed without I/O.
//!
//! Law Ruler posts a lead as JSON, form-encoded or multipart, with field names as its admins
//! typed them in the webhook setup: "Lead ID", "LeadID", "lead_id". Names are matched
//! case-insensitively, ignoring spaces, underscores and hyphens (SPEC §8). Routing parameters
//! (`list_id`, `list_name`, `list_action`, `remove_from_list`, `campaign_id`) may come in the URL
//! query or as body fields (Law Ruler's Params tab); the body wins when both are given.

use casebridge_domain::integrations::CrmValue;
use serde_json::Value;

/// The fields every Law Ruler webhook must carry (LR3), with the labels Law Ruler shows.
pub const REQUIRED: [(&str, &str); 10] = [
    ("leadid", "Lead ID"),
    ("casetypeid", "Case Type ID"),
    ("casetype", "Case Type"),
    ("statusid", "Status ID"),
    ("status", "Status"),
    ("fullname", "Full Name"),
    ("createddate", "Created Date"),
    ("primarycontactid", "Primary Contact ID"),
    ("firstname", "First Name"),
    ("lastname", "Last Name"),
];

/// The optional fields a lead is read from, with the names shown in messages.
const OPTIONAL: [(&str, &str); 13] = [
    ("email", "Email"),
    ("emailaddress", "Email Address"),
    ("primaryemail", "Primary Email"),
    ("cellphone", "Cell Phone"),
    ("phone", "Phone"),
    ("mobilephone", "Mobile Phone"),
    ("primaryphone", "Primary Phone"),
    ("homephone", "Home Phone"),
    ("listid", "list_id"),
    ("listname", "list_name"),
    ("listaction", "list_action"),
    ("removefromlist", "remove_from_list"),
    ("campaignid", "campaign_id"),
];

/// The name to show for a field the lead is read from; `None` for fields it ignores.
fn label(normalized: &str) -> Option<&'static str> {
    REQUIRED
        .iter()
        .chain(OPTIONAL.iter())
        .find(|(k, _)| *k == normalized)
        .map(|(_, label)| *label)
}

const EMAIL_KEYS: [&str; 3] = ["email", "emailaddress", "primaryemail"];
const PHONE_KEYS: [&str; 5] = [
    "cellphone",
    "phone",
    "mobilephone",
    "primaryphone",
    "homephone",
];

/// `"Lead ID"`, `"lead_id"` and `"LeadID"` all become `"leadid"`.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    #[error("a JSON body must be an object of field names to values")]
    NotAnObject,
    #[error("missing required fields: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("list_action must be add, attach, detach or remove, not `{0}`")]
    BadListAction(String),
    #[error("remove_from_list must be true or false, not `{0}`")]
    BadRemoveFlag(String),
    #[error("list_action `{0}` needs list_id or list_name")]
    ListActionWithoutList(String),
    /// A field the lead is read from is given twice with different values (say as "Lead ID"
    /// and as "lead_id", or twice in the URL).
    #[error("{field} is given more than once with different values (as {names})")]
    Conflicting { field: &'static str, names: String },
    #[error("{0} must not contain NUL characters (\\u0000)")]
    Nul(&'static str),
}

impl InboundError {
    /// The field to name in a validation error: the label of the field at fault, or `body`.
    pub fn field(&self) -> &'static str {
        match self {
            InboundError::BadListAction(_) | InboundError::ListActionWithoutList(_) => {
                "list_action"
            }
            InboundError::BadRemoveFlag(_) => "remove_from_list",
            InboundError::Conflicting { field, .. } | InboundError::Nul(field) => field,
            InboundError::Missing(_) | InboundError::BadJson(_) | InboundError::NotAnObject => {
                "body"
            }
        }
    }
}

/// Field name/value pairs from a JSON object, in the order sent and with repeated names kept
/// (so that a name given twice with different values can be refused, not resolved silently).
/// Strings, numbers and booleans become text; `null` is treated as absent; nested values are
/// kept as JSON text.
pub fn pairs_from_json(body: &[u8]) -> Result<Vec<(String, String)>, InboundError> {
    let JsonPairs(pairs) =
        serde_json::from_slice(body).map_err(|e: serde_json::Error| match e.classify() {
            serde_json::error::Category::Data => InboundError::NotAnObject,
            _ => InboundError::BadJson(e.to_string()),
        })?;
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            Some((k, text))
        })
        .collect())
}

/// A JSON object read as its list of members.
struct JsonPairs(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for JsonPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of field names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    out.push(member);
                }
                Ok(JsonPairs(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A fingerprint of a webhook's content, independent of field order, name style and body format:
/// the same lead sent twice (as JSON or as a form) hashes the same, so the repeat is a no-op.
pub fn content_hash(query: &[(String, String)], body: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut fields = Fields::new(&[query, body]).0;
    fields.sort();
    let mut h = Sha256::new();
    for (k, v) in fields {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Field name/value pairs from a form-encoded body.
pub fn pairs_from_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRef {
    /// The List ID shown on the Lists page.
    Id(String),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListAction {
    /// `add` or `attach`.
    Add,
    /// `detach`, `remove`, or `remove_from_list=true`.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDirective {
    pub list: ListRef,
    pub action: ListAction,
}

/// A lead as Law Ruler sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadWebhook {
    pub lead_id: String,
    pub case_type: CrmValue,
    pub status: CrmValue,
    pub full_name: String,
    pub created_date: String,
    pub primary_contact_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub list: Option<ListDirective>,
    pub campaign_id: Option<String>,
}

/// Normalised fields, later sources overriding earlier ones; empty values count as absent.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn new(sources: &[&[(String, String)]]) -> Self {
        let mut out: Vec<(String, String)> = Vec::new();
        for src in sources {
            for (k, v) in src.iter() {
                let k = normalize_key(k);
                let v = v.trim().to_owned();
                if v.is_empty() {
                    continue;
                }
                match out.iter_mut().find(|(ek, _)| *ek == k) {
                    Some(slot) => slot.1 = v,
                    None => out.push((k, v)),
                }
            }
        }
        Fields(out)
    }

    /// As [`Fields::new`], but refuses a field the lead is read from when one source gives it
    /// twice with different values (names compared as [`normalize_key`] does), or when its value
    /// holds a NUL character.
    fn unambiguous(sources: &[&[(String, String)]]) -> Result<Self, InboundError> {
        for src in sources {
            for (i, (k, v)) in src.iter().enumerate() {
                let key = normalize_key(k);
                let Some(field) = label(&key) else { continue };
                let v = v.trim();
                if v.contains('\0') {
                    return Err(InboundError::Nul(field));
                }
                let earlier = src[..i].iter().find(|(ek, ev)| {
                    normalize_key(ek) == key && !ev.trim().is_empty() && ev.trim() != v
                });
                if let (Some((ek, _)), false) = (earlier, v.is_empty()) {
                    return Err(InboundError::Conflicting {
                        field,
                        names: format!("`{ek}` and `{k}`"),
                    });
                }
            }
        }
        Ok(Self::new(sources))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k)).map(str::to_owned)
    }
}

/// Parses a lead from the URL query and the body's fields. Every missing required field is
/// named, with Law Ruler's label, so the admin can fix the webhook setup in one go.
pub fn parse_lead(
    query: &[(String, String)],
    body: &[(String, String)],
) -> Result<LeadWebhook, InboundError> {
    let f = Fields::unambiguous(&[query, body])?;
    let missing: Vec<&'static str> = REQUIRED
        .iter()
        .filter(|(k, _)| f.get(k).is_none())
        .map(|(_, label)| *label)
        .collect();
    if !missing.is_empty() {
        return Err(InboundError::Missing(missing));
    }
    let req = |k: &str| f.get(k).expect("checked above").to_owned();

    let list_ref = f
        .get("listid")
        .map(|v| ListRef::Id(v.to_owned()))
        .or_else(|| f.get("listname").map(|v| ListRef::Name(v.to_owned())));
    let remove_flag = match f.get("removefromlist") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
        Some(v) => return Err(InboundError::BadRemoveFlag(v.to_owned())),
    };
    let action = match f.get("listaction").map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("add" | "attach") => Some(ListAction::Add),
        Some("detach" | "remove") => Some(ListAction::Remove),
        Some(other) => return Err(InboundError::BadListAction(other.to_owned())),
    };
    let action = if remove_flag {
        Some(ListAction::Remove)
    } else {
        action
    };
    let list = match (list_ref, action) {
        (Some(list), action) => Some(ListDirective {
            list,
            action: action.unwrap_or(ListAction::Add),
        }),
        (None, Some(_)) => {
            let raw = f.get("listaction").unwrap_or("remove_from_list").to_owned();
            return Err(InboundError::ListActionWithoutList(raw));
        }
        (None, None) => None,
    };

    Ok(LeadWebhook {
        lead_id: req("leadid"),
        case_type: CrmValue {
            id: req("casetypeid"),
            name: req("casetype"),
        },
        status: CrmValue {
            id: req("statusid"),
            name: req("status"),
        },
        full_name: req("fullname"),
        created_date: req("createddate"),
        primary_contact_id: req("primarycontactid"),
        first_name: req("firstname"),
        last_name: req("lastname"),
        email: f.first(&EMAIL_KEYS),
        phone: f.first(&PHONE_KEYS),
        list,
        campaign_id: f.get("campaignid").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn full(style: fn(&str) -> String) -> Vec<(String, String)> {
        let labels = [
            ("Lead ID", "1001"),
            ("Case Type ID", "12"),
            ("Case Type", "Auto Accident"),
            ("Status ID", "7"),
            ("Status", "Intake"),
            ("Full Name", "Jane Doe"),
            ("Created Date", "2026-11-01"),
            ("Primary Contact ID", "PC-9"),
            ("First Name", "Jane"),
            ("Last Name", "Doe"),
        ];
        labels
            .iter()
            .map(|(k, v)| (style(k), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_compact_and_snake_names_all_parse() {
        for style in [
            (|k: &str| k.to_owned()) as fn(&str) -> String,
            |k| k.replace(' ', ""),
            |k| k.to_lowercase().replace(' ', "_"),
            |k| k.to_uppercase().replace(' ', "-"),
        ] {
            let lead = parse_lead(&[], &full(style)).unwrap();
            assert_eq!(lead.lead_id, "1001");
            assert_eq!(
                lead.case_type,
                CrmValue {
                    id: "12".into(),
                    name: "Auto Accident".into()
                }
            );
            assert_eq!(lead.primary_contact_id, "PC-9");
        }
    }

    #[test]
    fn every_missing_field_is_named() {
        let mut body = full(|k| k.to_owned());
        body.retain(|(k, _)| k != "Status" && k != "Last Name");
        for (k, v) in body.iter_mut() {
            if k == "First Name" {
                *v = "   ".into(); // blank counts as missing
            }
        }
        let err = parse_lead(&[], &body).unwrap_err();
        assert_eq!(
            err,
            InboundError::Missing(vec!["Status", "First Name", "Last Name"])
        );
    }

    #[test]
    fn list_routing_from_query_or_body() {
        let body = full(|k| k.to_owned());
        let lead = parse_lead(&pairs(&[("list_id", "L1")]), &body).unwrap();
        assert_eq!(
            lead.list,
            Some(ListDirective {
                list: ListRef::Id("L1".into()),
                action: ListAction::Add
            })
        );

        let mut with_params = body.clone();
        with_params.extend(pairs(&[("list_name", "Intake"), ("list_action", "detach")]));
        let lead = parse_lead(&[], &with_params).unwrap();
        assert_eq!(
            lead.list,
            Some(ListDirective {
                list: ListRef::Name("Intake".into()),
                action: ListAction::Remove
            })
        );

        let lead = parse_lead(
            &pairs(&[
                ("list_id", "L1"),
                ("remove_from_list", "true"),
                ("campaign_id", "C9"),
            ]),
            &body,
        )
        .unwrap();
        assert_eq!(lead.list.unwrap().action, ListAction::Remove);
        assert_eq!(lead.campaign_id.as_deref(), Some("C9"));

        // The body (Params tab) wins over the URL.
        let mut params = body.clone();
        params.push(("list_action".into(), "attach".into()));
        let lead = parse_lead(
            &pairs(&[("list_id", "L1"), ("list_action", "remove")]),
            &params,
        )
        .unwrap();
        assert_eq!(lead.list.unwrap().action, ListAction::Add);

        assert_eq!(
            parse_lead(
                &pairs(&[("list_action", "explode"), ("list_id", "L1")]),
                &body
            )
            .unwrap_err(),
            InboundError::BadListAction("explode".into())
        );
        assert!(matches!(
            parse_lead(&pairs(&[("list_action", "add")]), &body).unwrap_err(),
            InboundError::ListActionWithoutList(_)
        ));
    }

    #[test]
    fn json_values_become_text() {
        let p = pairs_from_json(
            br#"{"Lead ID": 1001, "Active": true, "Note": null, "Nested": {"a": 1}}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            pairs(&[
                ("Lead ID", "1001"),
                ("Active", "true"),
                ("Nested", "{\"a\":1}")
            ])
        );
        assert_eq!(
            pairs_from_json(b"[1]").unwrap_err(),
            InboundError::NotAnObject
        );
        assert!(matches!(
            pairs_from_json(b"{").unwrap_err(),
            InboundError::BadJson(_)
        ));
        assert_eq!(
            pairs_from_form(b"Lead+ID=1&First%20Name=J%C3%BCrgen"),
            pairs(&[("Lead ID", "1"), ("First Name", "Jürgen")])
        );
    }

    #[test]
    fn content_hash_ignores_order_style_and_format() {
        let a = full(|k| k.to_owned());
        let mut b = full(|k| k.to_lowercase().replace(' ', "_"));
        b.reverse();
        assert_eq!(content_hash(&[], &a), content_hash(&[], &b));
        let mut c = a.clone();
        c[0].1 = "1002".into();
        assert_ne!(content_hash(&[], &a), content_hash(&[], &c));
    }

    #[test]
    fn contact_details_are_optional_and_aliased() {
        let mut body = full(|k| k.to_owned());
        body.extend(pairs(&[
            ("Cell Phone", "+1 555 0100"),
            ("Email Address", "j@example.com"),
        ]));
        let lead = parse_lead(&[], &body).unwrap();
        assert_eq!(lead.phone.as_deref(), Some("+1 555 0100"));
        assert_eq!(lead.email.as_deref(), Some("j@example.com"));
    }

    #[test]
    fn a_field_given_twice_with_different_values_is_refused() {
        let mut body = full(|k| k.to_owned());
        body.push(("lead_id".into(), "1002".into()));
        let err = parse_lead(&[], &body).unwrap_err();
        assert_eq!(err.field(), "Lead ID");
        assert!(err.to_string().contains("`Lead ID` and `lead_id`"), "{err}");

        // Equal repeats, blank repeats and repeats of fields the lead ignores pass.
        let mut body = full(|k| k.to_owned());
        body.extend(pairs(&[
            ("LeadID", " 1001 "),
            ("lead_id", ""),
            ("Note", "a"),
            ("note", "b"),
        ]));
        assert_eq!(parse_lead(&[], &body).unwrap().lead_id, "1001");

        // Within the URL too; between URL and body the body still wins.
        let body = full(|k| k.to_owned());
        let err = parse_lead(&pairs(&[("list_id", "1"), ("list_id", "2")]), &body).unwrap_err();
        assert_eq!(err.field(), "list_id");
        let mut with_list = body.clone();
        with_list.push(("list_id".into(), "L2".into()));
        let lead = parse_lead(&pairs(&[("list_id", "L1")]), &with_list).unwrap();
        assert_eq!(lead.list.unwrap().list, ListRef::Id("L2".into()));
    }

    #[test]
    fn repeated_json_members_are_kept_for_the_check() {
        assert_eq!(
            pairs_from_json(br#"{"Lead ID": 1, "lead_id": "2", "x": null}"#).unwrap(),
            pairs(&[("Lead ID", "1"), ("lead_id", "2")])
        );
    }

    #[test]
    fn a_nul_in_a_field_the_lead_is_read_from_is_refused() {
        let mut body = full(|k| k.to_owned());
        body[5].1 = "Jane\0Doe".into();
        let err = parse_lead(&[], &body).unwrap_err();
        assert_eq!(err.field(), "Full Name");
    }
}
