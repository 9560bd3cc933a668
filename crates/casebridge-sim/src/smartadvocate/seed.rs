//! The demo tenant.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{SimCase, SimContact, SimSecondStatus, SimUdf, SimUser, SmartAdvocateSimBuilder};

pub const DEMO_USERNAME: &str = "demo";
/// Mixed case on purpose: the simulator compares passwords case-sensitively.
pub const DEMO_PASSWORD: &str = "Demo-Password";
/// The status type that holds the primary case status.
pub const PRIMARY_STATUS_TYPE: &str = "Status";

fn udf(id: u64, name: &str, short: Option<&str>, kind: &str, group: &str) -> SimUdf {
    SimUdf {
        udf_id: id,
        udf_name: name.to_owned(),
        udf_short_name: short.map(str::to_owned),
        udf_type: kind.to_owned(),
        udf_group: group.to_owned(),
    }
}

fn contact(id: u64, first: &str, last: &str, email: &str, phone: &str) -> SimContact {
    SimContact {
        contact_id: id,
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        email: Some(email.to_owned()),
        phone: Some(phone.to_owned()),
        address1: None,
        city: None,
        state: None,
        zip: None,
        modified: Timestamp::from_second(1_735_689_600).expect("valid"),
    }
}

/// User `demo` / `Demo-Password`; case types 1 "Motor Vehicle Accident" and 2 "Premises
/// Liability"; the primary "Status" type (1: Intake, 2: Signed Up, 3: Rejected) and the four
/// dialer types of SmartAdvocate's Predictive Dialer guide ("Attempts Status" 0–20); UDFs per case
/// type, each with a "Next Call" (modelled: where casebridge writes a call's next call); cases 9000001
/// and 9000002 (the KB's example number) with second statuses.
pub(super) fn demo() -> SmartAdvocateSimBuilder {
    let at = Timestamp::from_second(1_735_689_600).expect("valid"); // 2025-01-01T00:00:00Z
    let case = |id: u64, number: &str, case_type: u64, status: u64, contact: u64| SimCase {
        case_id: id,
        case_number: number.to_owned(),
        case_type_id: case_type,
        status_id: status,
        status_from: at,
        second_statuses: vec![SimSecondStatus {
            status_type_id: 10,
            status_id: 101,
            from: at,
        }],
        plaintiff_contact_id: contact,
        udf_values: BTreeMap::new(),
        notes: Vec::new(),
        created: at,
        modified: at,
    };
    let mut second = case(1002, "9000002", 2, 2, 7002);
    second.second_statuses = vec![
        SimSecondStatus {
            status_type_id: 10,
            status_id: 103,
            from: at,
        },
        SimSecondStatus {
            status_type_id: 11,
            status_id: 112,
            from: at,
        },
    ];
    // "Attempts Status" 0–20, as the dialer guide sets it up: ids 130–150.
    let names: Vec<String> = (0..=20).map(|n: u64| n.to_string()).collect();
    let attempts: Vec<(u64, &str)> = names
        .iter()
        .enumerate()
        .map(|(n, name)| (130 + n as u64, name.as_str()))
        .collect();
    SmartAdvocateSimBuilder {
        user: SimUser {
            username: DEMO_USERNAME.into(),
            password: DEMO_PASSWORD.into(),
            user_id: 42,
        },
        token_ttl: Duration::from_secs(7200),
        dedupe_window: Duration::from_secs(3 * 24 * 3600),
        case_types: Vec::new(),
        status_types: Vec::new(),
        udfs: BTreeMap::new(),
        contacts: Vec::new(),
        cases: Vec::new(),
    }
    .case_type(1, "Motor Vehicle Accident")
    .case_type(2, "Premises Liability")
    .status_type(
        1,
        PRIMARY_STATUS_TYPE,
        &[(1, "Intake"), (2, "Signed Up"), (3, "Rejected")],
    )
    .status_type(
        10,
        "Dialer Status",
        &[
            (101, "To Dial"),
            (102, "In the Dialer"),
            (103, "Do not Dial"),
        ],
    )
    .status_type(
        11,
        "Last Dialer Disposition",
        &[
            (111, "Never Dialed"),
            (112, "Busy"),
            (113, "No Answer"),
            (114, "Answering Machine"),
            (115, "Successful"),
        ],
    )
    .status_type(12, "Campaign Status", &[(121, "Spring Outreach")])
    .status_type(13, "Attempts Status", &attempts)
    .udf(
        1,
        udf(501, "Accident Date", Some("Acc. Date"), "Date", "Incident"),
    )
    .udf(
        1,
        udf(502, "Police Report Number", None, "Text", "Incident"),
    )
    .udf(1, udf(503, "Injured", None, "YesNo", "Injuries"))
    .udf(1, udf(504, "Next Call", None, "DateTime", "Dialer"))
    .udf(
        2,
        udf(
            601,
            "Incident Location",
            Some("Location"),
            "Text",
            "Incident",
        ),
    )
    .udf(2, udf(602, "Property Owner", None, "Text", "Parties"))
    .udf(2, udf(603, "Next Call", None, "DateTime", "Dialer"))
    .contact(contact(
        7001,
        "Jane",
        "Doe",
        "jane@example.com",
        "+15551230001",
    ))
    .contact(contact(
        7002,
        "John",
        "Roe",
        "john@example.com",
        "+15551230002",
    ))
    .case(case(1001, "9000001", 1, 1, 7001))
    .case(second)
}
