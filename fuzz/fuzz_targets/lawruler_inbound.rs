//! Feeds arbitrary bytes to every stage of the Law Ruler inbound parser: JSON and form decoding,
//! lead parsing (with the bytes also as a URL query), and the content hash.
#![no_main]

use casebridge_crm::lawruler::inbound::{content_hash, pairs_from_form, pairs_from_json, parse_lead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let form = pairs_from_form(data);
    if let Ok(json) = pairs_from_json(data) {
        let _ = parse_lead(&form, &json);
    }
    let _ = parse_lead(&[], &form);
    let _ = content_hash(&form, &form);
});
