//! The default tenant: what `casebridge sim lawruler` starts with.

use super::{LawRulerSimBuilder, NewLead, SimCredentials, SimCustomField};

pub const DEMO_USERNAME: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
pub const DEMO_KEY: &str = "demo-key";

/// Note categories the tenant has; a note in another category is refused.
pub const NOTE_CATEGORIES: &[&str] = &["Client Communications", "General", "Intake", "Medical"];

pub(super) fn demo_credentials() -> SimCredentials {
    SimCredentials {
        username: DEMO_USERNAME.into(),
        password: DEMO_PASSWORD.into(),
        client_secret: DEMO_CLIENT_SECRET.into(),
        key: DEMO_KEY.into(),
    }
}

pub(super) fn default_seed() -> LawRulerSimBuilder {
    let f = SimCustomField::new;
    LawRulerSimBuilder::empty()
        .case_type("12", "Auto Accident")
        .case_type("13", "Slip and Fall")
        .case_type("14", "Workers' Compensation")
        .status("7", "Intake")
        .status("8", "Qualified – Intake Completed")
        .status("9", "Sent e-Sign")
        .status("10", "Review Needed")
        .status("11", "Signed Up")
        .custom_field(
            "12",
            f("1234", "Date of Injury", "date", "Accident Details"),
        )
        .custom_field(
            "12",
            f("1235", "Police Report Filed", "yesno", "Accident Details"),
        )
        .custom_field(
            "12",
            f("1236", "Injury Description", "textarea", "Injuries"),
        )
        .custom_field("12", f("1237", "Medical Bills", "number", "Injuries"))
        .custom_field(
            "13",
            f("1240", "Date of Incident", "date", "Incident Details"),
        )
        .custom_field("13", f("1241", "Location", "text", "Incident Details"))
        .custom_field(
            "13",
            f("1242", "Owner Notified", "yesno", "Incident Details"),
        )
        .custom_field("14", f("1250", "Employer", "text", "Employment"))
        .custom_field("14", f("1251", "Date of Injury", "date", "Employment"))
        .custom_field("14", f("1252", "Weekly Wage", "number", "Employment"))
        .lead(NewLead {
            email: Some("jane.doe@example.com".into()),
            cell_phone: Some("+1 555 010 2000".into()),
            ..NewLead::new("Jane", "Doe", "12")
        })
        .lead(NewLead {
            status_id: Some("10".into()),
            cell_phone: Some("+1 555 010 3000".into()),
            ..NewLead::new("John", "Roe", "13")
        })
}
