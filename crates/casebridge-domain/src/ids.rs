//! Typed identifiers. Every id is a UUIDv7 (time-ordered), so ordering by id is ordering by creation
//! and cursor pagination needs no second column.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lower case: the form stored in the database, whose byte order
                // matches the UUIDv7 time order.
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant. Every other record belongs to exactly one company.
    CompanyId
);
id_type!(ApiKeyId);
id_type!(UserId);
id_type!(CaseTypeId);
id_type!(CaseStatusId);
id_type!(ClientId);
id_type!(CaseId);
id_type!(ListId);
id_type!(CampaignId);
id_type!(JobId);
id_type!(EventId);
id_type!(WebhookId);
id_type!(WebhookSecretId);
id_type!(DeliveryId);
id_type!(AttemptId);
id_type!(CallId);
id_type!(TransferId);
id_type!(MessageId);
id_type!(TaskId);
id_type!(
    /// A voice agent of the platform, as far as scheduling is concerned.
    AgentId
);
id_type!(
    /// A booking made through the scheduling service.
    BookingId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_as_strings() {
        let a = CaseId::new();
        let b = CaseId::new();
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<CaseId>().unwrap(), a);
    }
}
