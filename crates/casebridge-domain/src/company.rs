//! Companies (tenants) and their settings.

use crate::error::{ValidationError, Validator};
use crate::records::Name;

/// An IANA time zone name that this build knows, e.g. `America/New_York`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        match jiff::tz::TimeZone::get(raw) {
            Ok(_) if !raw.is_empty() => Ok(Self(raw.to_owned())),
            _ => Err(ValidationError::single(
                field,
                format!("`{raw}` is not a known IANA time zone (for example `America/New_York`)"),
            )),
        }
    }

    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone)]
pub struct NewCompany {
    pub name: Name,
    pub timezone: TimeZoneName,
}

impl NewCompany {
    pub fn parse(name: &str, timezone: Option<&str>) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let name = v.check(Name::parse("name", name));
        let timezone = match timezone {
            Some(tz) => v.check(TimeZoneName::parse("timezone", tz)),
            None => Some(TimeZoneName::utc()),
        };
        v.finish()?;
        Ok(Self {
            name: name.expect("checked"),
            timezone: timezone.expect("checked"),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CompanyPatch {
    pub name: Option<Name>,
    pub timezone: Option<TimeZoneName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_checked() {
        assert!(TimeZoneName::parse("tz", "America/New_York").is_ok());
        assert!(TimeZoneName::parse("tz", "Mars/Olympus").is_err());
        assert!(TimeZoneName::parse("tz", "").is_err());
    }

    #[test]
    fn new_company_reports_every_bad_field() {
        let err = NewCompany::parse(" ", Some("Nowhere/Town")).unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "timezone"]);
    }
}
