//! Property tests for the Law Ruler inbound parser: whatever arrives, it answers with a lead or
//! a clear error, never a panic; a webhook carrying the ten required fields parses to exactly
//! the lead it carries, whatever the name style of each field, the body format (JSON or form)
//! and whether a field came in the URL query or the body.

use casebridge_crm::lawruler::inbound::{
    content_hash, normalize_key, pairs_from_form, pairs_from_json, parse_lead, InboundError,
    LeadWebhook, REQUIRED,
};
use casebridge_domain::integrations::CrmValue;
use proptest::prelude::*;

/// One field name as an admin might type a label: its words joined by any separator, each
/// character upper or lower case at random.
fn styled(label: &'static str) -> impl Strategy<Value = String> {
    let len = label.chars().count();
    (
        prop_oneof![Just(" "), Just("_"), Just("-"), Just("")],
        proptest::collection::vec(any::<bool>(), len),
    )
        .prop_map(move |(sep, upper)| {
            label
                .replace(' ', sep)
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| {
                    if *up {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        })
}

/// A required field's value: non-blank text, sometimes padded with spaces (which are trimmed).
fn value() -> impl Strategy<Value = (String, String)> {
    ("[A-Za-z0-9][A-Za-z0-9 .,'/:+-]{0,24}", " {0,2}", " {0,2}").prop_map(|(v, before, after)| {
        let trimmed = v.trim().to_owned();
        (format!("{before}{v}{after}"), trimmed)
    })
}

type Pairs = Vec<(String, String)>;

/// Where a field travels.
#[derive(Debug, Clone, Copy)]
enum Place {
    Query,
    Body,
}

/// A webhook: the fields as sent (name, value, place) and the lead they carry.
#[derive(Debug, Clone)]
struct Webhook {
    fields: Vec<(String, String, Place)>,
    lead: LeadWebhook,
}

fn webhook() -> impl Strategy<Value = Webhook> {
    let required = REQUIRED.map(|(_, label)| {
        (
            styled(label),
            value(),
            prop_oneof![Just(Place::Query), Just(Place::Body)],
        )
    });
    let email = proptest::option::of((
        prop_oneof![
            styled("Email"),
            styled("Email Address"),
            styled("Primary Email")
        ],
        "[a-z]{1,8}@[a-z]{1,8}\\.test",
    ));
    let phone = proptest::option::of((
        prop_oneof![
            styled("Cell Phone"),
            styled("Phone"),
            styled("Mobile Phone")
        ],
        "\\+1 555 [0-9]{3} [0-9]{4}",
    ));
    // Fields the parser does not know (their names start with x, which no known name does),
    // distinct once normalised.
    let extras = proptest::collection::btree_map("x[a-z]{0,10}", ".{0,12}", 0..4);
    (required, email, phone, extras).prop_map(|(required, email, phone, extras)| {
        let mut fields: Vec<(String, String, Place)> = Vec::new();
        let mut values = Vec::new();
        for (name, (sent, trimmed), place) in required {
            fields.push((name, sent, place));
            values.push(trimmed);
        }
        for (name, v) in email.iter().chain(phone.iter()) {
            fields.push((name.clone(), v.clone(), Place::Body));
        }
        for (name, v) in extras {
            fields.push((name, v, Place::Body));
        }
        let v = |i: usize| values[i].clone();
        let lead = LeadWebhook {
            lead_id: v(0),
            case_type: CrmValue {
                id: v(1),
                name: v(2),
            },
            status: CrmValue {
                id: v(3),
                name: v(4),
            },
            full_name: v(5),
            created_date: v(6),
            primary_contact_id: v(7),
            first_name: v(8),
            last_name: v(9),
            email: email.map(|(_, e)| e),
            phone: phone.map(|(_, p)| p),
            list: None,
            campaign_id: None,
        };
        Webhook { fields, lead }
    })
}

/// How a body is encoded on the wire; it is decoded the way the inbound route decodes it.
#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Form,
}

impl Webhook {
    /// The query and body pairs casebridge reads from this webhook sent as `format`.
    fn sent_as(&self, format: Format) -> (Pairs, Pairs) {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        let mut json = serde_json::Map::new();
        for (name, value, place) in &self.fields {
            match (place, format) {
                (Place::Query, _) => {
                    query.append_pair(name, value);
                }
                (Place::Body, Format::Form) => {
                    form.append_pair(name, value);
                }
                (Place::Body, Format::Json) => {
                    json.insert(name.clone(), serde_json::Value::String(value.clone()));
                }
            }
        }
        let body = match format {
            Format::Form => pairs_from_form(form.finish().as_bytes()),
            Format::Json => pairs_from_json(&serde_json::to_vec(&json).unwrap()).unwrap(),
        };
        (pairs_from_form(query.finish().as_bytes()), body)
    }
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Json), Just(Format::Form)]
}

fn pair() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[A-Za-z _-]{0,20}",
            Just("Lead ID".to_owned()),
            Just("list_action".to_owned()),
            Just("remove_from_list".to_owned()),
            Just("list_id".to_owned()),
        ],
        ".{0,30}",
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = pairs_from_json(&bytes);
        let pairs = pairs_from_form(&bytes);
        let _ = parse_lead(&[], &pairs);
        let _ = content_hash(&[], &pairs);
    }

    #[test]
    fn arbitrary_fields_never_panic(query in proptest::collection::vec(pair(), 0..12),
                                    body in proptest::collection::vec(pair(), 0..24)) {
        let _ = parse_lead(&query, &body);
    }

    #[test]
    fn a_complete_webhook_parses_to_the_lead_it_carries(hook in webhook(), format in format()) {
        let (query, body) = hook.sent_as(format);
        let lead = parse_lead(&query, &body);
        prop_assert_eq!(lead, Ok(hook.lead.clone()), "query {:?} body {:?}", query, body);
    }

    #[test]
    fn the_same_lead_hashes_the_same_in_any_style_and_format(
        hook in webhook(), restyled in webhook(), a in format(), b in format()
    ) {
        // `restyled` lends its names and places; the values stay `hook`'s.
        let mut other = hook.clone();
        for ((name, _, place), (new_name, _, new_place)) in other.fields.iter_mut().zip(&restyled.fields).take(REQUIRED.len()) {
            *name = new_name.clone();
            *place = *new_place;
        }
        let (q1, b1) = hook.sent_as(a);
        let (q2, b2) = other.sent_as(b);
        prop_assert_eq!(parse_lead(&q2, &b2), Ok(hook.lead.clone()));
        prop_assert_eq!(content_hash(&q1, &b1), content_hash(&q2, &b2));
    }

    #[test]
    fn every_missing_required_field_is_named_in_order(
        hook in webhook(), format in format(), drop in proptest::collection::vec(any::<bool>(), REQUIRED.len())
    ) {
        prop_assume!(drop.contains(&true));
        let mut partial = hook.clone();
        let mut i = 0;
        partial.fields.retain(|_| {
            i += 1;
            i > REQUIRED.len() || !drop[i - 1]
        });
        let (query, body) = partial.sent_as(format);
        let expected: Vec<&str> = REQUIRED.iter().zip(&drop).filter(|(_, d)| **d).map(|((_, label), _)| *label).collect();
        prop_assert_eq!(parse_lead(&query, &body), Err(InboundError::Missing(expected)));
    }
}

#[test]
fn required_keys_are_the_normalised_labels() {
    for (key, label) in REQUIRED {
        assert_eq!(normalize_key(label), key);
    }
}
