//! The lead and campaign APIs' validation: a request's fields are checked as a whole and turned
//! into [`LeadChanges`] before anything is changed, so a refused request changes nothing.

use jiff::civil::Date;
use jiff::Timestamp;

use super::{SimCaseType, SimCustomField, SimLead, SimStatus, State};

/// Parameter names the APIs consume themselves (never stored as lead fields).
const RESERVED: &[&str] = &[
    "key",
    "leadid",
    "overridelead",
    "overriddenlead",
    "operation",
];

/// A request's parameters: body fields first, then the query string; names case-insensitive.
pub(super) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(super) fn new(form: &[(String, String)], query: &[(String, String)]) -> Self {
        Self {
            pairs: form.iter().chain(query).cloned().collect(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the parameter is present and `true` (any case).
    pub(super) fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Each name once (its first value), in order.
    fn distinct(&self) -> Vec<(&str, &str)> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (k, v) in &self.pairs {
            let lower = k.to_ascii_lowercase();
            if !seen.contains(&lower) {
                seen.push(lower);
                out.push((k.as_str(), v.as_str()));
            }
        }
        out
    }
}

/// What a valid request changes on a lead.
#[derive(Debug, Default)]
pub(super) struct LeadChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub cell_phone: Option<String>,
    pub case_type: Option<SimCaseType>,
    pub status: Option<SimStatus>,
    pub tags: Vec<String>,
    /// `custom<ID>` (normalised to lower case) → value; an empty value clears the field.
    pub custom: Vec<(String, String)>,
    /// Any other field, under its name as sent.
    pub other: Vec<(String, String)>,
}

impl LeadChanges {
    pub(super) fn apply(self, lead: &mut SimLead, now: Timestamp) {
        if let Some(v) = self.first_name {
            lead.first_name = v;
        }
        if let Some(v) = self.last_name {
            lead.last_name = v;
        }
        if let Some(v) = self.email {
            lead.email = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = self.cell_phone {
            lead.cell_phone = (!v.is_empty()).then_some(v);
        }
        if let Some(c) = self.case_type {
            lead.case_type_id = c.id;
            lead.case_type = c.name;
        }
        if let Some(s) = self.status {
            lead.status_id = s.id;
            lead.status = s.name;
        }
        for tag in self.tags {
            if !lead.tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                lead.tags.push(tag);
            }
        }
        for (k, v) in self.custom.into_iter().chain(self.other) {
            if v.is_empty() {
                lead.fields.remove(&k);
            } else {
                lead.fields.insert(k, v);
            }
        }
        lead.updated_at = now;
    }
}

/// Checks every parameter of a create/update/campaign request. `current_case_type` is the
/// lead's case type (updates); a `CaseType` in the request takes its place for custom fields.
/// `Err` is the failure reason, as the answer `Failed|<reason>` carries it.
pub(super) fn lead_changes(
    st: &State,
    params: &Params,
    current_case_type: Option<&str>,
) -> Result<LeadChanges, String> {
    let mut c = LeadChanges::default();
    let mut custom_raw: Vec<(&str, &str)> = Vec::new();
    for (name, value) in params.distinct() {
        let lower = name.to_ascii_lowercase();
        let value_t = value.trim();
        match lower.as_str() {
            l if RESERVED.contains(&l) => {}
            "firstname" | "lastname" => {
                if value_t.is_empty() {
                    return Err(format!("{} is required", canonical(&lower)));
                }
                if lower == "firstname" {
                    c.first_name = Some(value_t.to_owned());
                } else {
                    c.last_name = Some(value_t.to_owned());
                }
            }
            "email" => {
                if !value_t.is_empty() && !valid_email(value_t) {
                    return Err("Email is invalid".into());
                }
                c.email = Some(value_t.to_owned());
            }
            "cellphone" => {
                if !value_t.is_empty() && !valid_phone(value_t) {
                    return Err("CellPhone is invalid".into());
                }
                c.cell_phone = Some(value_t.to_owned());
            }
            "casetype" | "casetypeid" => {
                let found = if lower == "casetypeid" {
                    st.case_types.iter().find(|t| t.id == value_t)
                } else {
                    st.case_type(value_t)
                };
                c.case_type = Some(
                    found
                        .cloned()
                        .ok_or_else(|| format!("{} is invalid", canonical(&lower)))?,
                );
            }
            "status" | "statusid" => {
                let found = if lower == "statusid" {
                    st.status_by_id(value_t)
                } else {
                    st.status(value_t)
                };
                c.status = Some(
                    found
                        .cloned()
                        .ok_or_else(|| format!("{} is invalid", canonical(&lower)))?,
                );
            }
            "tags" => {
                c.tags = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            l if is_custom(l) => custom_raw.push((name, value)),
            _ => c.other.push((name.to_owned(), value.to_owned())),
        }
    }
    let case_type = c
        .case_type
        .as_ref()
        .map(|t| t.id.as_str())
        .or(current_case_type);
    let fields: &[SimCustomField] = case_type
        .and_then(|id| st.custom_fields.get(id))
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (name, value) in custom_raw {
        let key = name.to_ascii_lowercase();
        let field = fields
            .iter()
            .find(|f| f.key.eq_ignore_ascii_case(&key))
            .ok_or_else(|| format!("{name} is invalid"))?;
        let value = value.trim();
        if !value.is_empty() && !valid_custom_value(&field.input_type, value) {
            return Err(format!("{name} is invalid"));
        }
        c.custom.push((key, value.to_owned()));
    }
    Ok(c)
}

fn canonical(lower: &str) -> &'static str {
    match lower {
        "firstname" => "FirstName",
        "lastname" => "LastName",
        "casetype" => "CaseType",
        "casetypeid" => "CaseTypeID",
        "status" => "Status",
        "statusid" => "StatusID",
        _ => "Field",
    }
}

fn is_custom(lower: &str) -> bool {
    lower
        .strip_prefix("custom")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn valid_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.chars().any(char::is_whitespace)
}

pub(super) fn valid_phone(v: &str) -> bool {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && v.chars()
            .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch))
}

/// A value fits the field's input type: `date` (M/D/YYYY or YYYY-MM-DD), `number`, `yesno`
/// (Yes/No/True/False); anything else takes any text.
pub(super) fn valid_custom_value(input_type: &str, v: &str) -> bool {
    match input_type {
        "date" => parse_date(v).is_some(),
        "number" => v.replace(',', "").parse::<f64>().is_ok_and(f64::is_finite),
        "yesno" => ["yes", "no", "true", "false"]
            .iter()
            .any(|ok| v.eq_ignore_ascii_case(ok)),
        _ => true,
    }
}

fn parse_date(v: &str) -> Option<Date> {
    if let Ok(d) = v.parse::<Date>() {
        return Some(d);
    }
    let mut it = v.split('/');
    let (m, d, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_value_types() {
        assert!(valid_custom_value("date", "1/1/2000"));
        assert!(valid_custom_value("date", "12/31/2024"));
        assert!(valid_custom_value("date", "2024-02-29"));
        assert!(!valid_custom_value("date", "2023-02-29"));
        assert!(!valid_custom_value("date", "13/1/2000"));
        assert!(!valid_custom_value("date", "yesterday"));
        assert!(valid_custom_value("number", "1,250.50"));
        assert!(!valid_custom_value("number", "many"));
        assert!(valid_custom_value("yesno", "Yes"));
        assert!(valid_custom_value("yesno", "false"));
        assert!(!valid_custom_value("yesno", "maybe"));
        assert!(valid_custom_value("text", "anything"));
    }

    #[test]
    fn emails_and_phones() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("a b@c.d"));
        assert!(valid_phone("+1 (555) 010-2000"));
        assert!(!valid_phone("12"));
        assert!(!valid_phone("555-CALL-NOW"));
    }

    #[test]
    fn custom_names() {
        assert!(is_custom("custom1234"));
        assert!(!is_custom("custom"));
        assert!(!is_custom("customer"));
    }
}
