//! Property tests for the Law Ruler inbound parser: whatever arrives, it answers with a lead or
//! a clear error, never a panic, and its field-name matching is insensitive to style.

use casebridge_crm::lawruler::inbound::{
    content_hash, normalize_key, pairs_from_form, pairs_from_json, parse_lead, REQUIRED,
};
use proptest::prelude::*;

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
    fn name_style_does_not_matter(upper in any::<bool>(), sep in prop_oneof![Just(" "), Just("_"), Just("-"), Just("")]) {
        let labels = ["Lead ID", "Case Type ID", "Case Type", "Status ID", "Status", "Full Name",
                      "Created Date", "Primary Contact ID", "First Name", "Last Name"];
        let body: Vec<(String, String)> = labels.iter().enumerate().map(|(i, l)| {
            let k = l.replace(' ', sep);
            (if upper { k.to_uppercase() } else { k.to_lowercase() }, format!("v{i}"))
        }).collect();
        let lead = parse_lead(&[], &body).unwrap();
        prop_assert_eq!(lead.lead_id, "v0");
        prop_assert_eq!(lead.last_name, "v9");
        for (key, label) in REQUIRED {
            prop_assert_eq!(normalize_key(label), key);
        }
    }
}
