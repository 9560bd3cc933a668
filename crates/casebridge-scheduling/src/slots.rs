//! Open slots as the company sees them: in its time zone, within the asked-for window, and the
//! nearest ones to a time that could not be booked. Pure.

use casebridge_domain::scheduling::TimeWindow;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::calcom::Slot;

/// How many alternatives a refused booking offers.
pub const ALTERNATIVES: usize = 5;

/// A slot in the company's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSlot {
    pub start: Zoned,
    pub end: Option<Zoned>,
}

impl LocalSlot {
    /// RFC 3339 with the zone's offset at that instant, e.g. `2026-03-08T09:00:00-04:00`.
    pub fn start_rfc3339(&self) -> String {
        rfc3339(&self.start)
    }

    pub fn end_rfc3339(&self) -> Option<String> {
        self.end.as_ref().map(rfc3339)
    }

    /// The local date, `2026-03-08`.
    pub fn date(&self) -> String {
        self.start.date().to_string()
    }

    /// The local wall-clock time, `09:00`.
    pub fn time(&self) -> String {
        self.start.strftime("%H:%M").to_string()
    }
}

pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The service's slots that start within `window`, in `tz`, in order. The instants are what
/// count: whatever zone the service wrote them in, they are re-expressed in the company's.
pub fn localize(slots: &[Slot], tz: &TimeZone, window: &TimeWindow) -> Vec<LocalSlot> {
    let mut out: Vec<LocalSlot> = slots
        .iter()
        .filter(|s| s.start >= window.start && s.start < window.end)
        .map(|s| LocalSlot {
            start: s.start.to_zoned(tz.clone()),
            end: s.end.map(|e| e.to_zoned(tz.clone())),
        })
        .collect();
    out.sort_by_key(|s| s.start.timestamp());
    out.dedup_by_key(|s| s.start.timestamp());
    out
}

/// Up to `n` slots closest in time to `around` (not `around` itself), in chronological order.
pub fn nearest(slots: &[LocalSlot], around: Timestamp, n: usize) -> Vec<LocalSlot> {
    let mut by_distance: Vec<&LocalSlot> = slots
        .iter()
        .filter(|s| s.start.timestamp() != around)
        .collect();
    by_distance.sort_by_key(|s| {
        let d = s.start.timestamp().duration_since(around).abs();
        (d, s.start.timestamp())
    });
    let mut picked: Vec<LocalSlot> = by_distance.into_iter().take(n).cloned().collect();
    picked.sort_by_key(|s| s.start.timestamp());
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn slot(s: &str) -> Slot {
        Slot {
            start: ts(s),
            end: None,
        }
    }

    #[test]
    fn slots_are_shown_in_the_company_zone_across_a_dst_change() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let window = TimeWindow {
            start: ts("2026-03-07T05:00:00Z"),
            end: ts("2026-03-09T04:00:00Z"),
        };
        let slots = [
            slot("2026-03-08T13:00:00Z"),
            slot("2026-03-07T14:00:00Z"),
            slot("2026-03-09T13:00:00Z"), // outside the window
            slot("2026-03-07T14:00:00Z"), // twice
        ];
        let local = localize(&slots, &ny, &window);
        let shown: Vec<_> = local
            .iter()
            .map(|s| (s.start_rfc3339(), s.date(), s.time()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "2026-03-07T09:00:00-05:00".into(),
                    "2026-03-07".into(),
                    "09:00".into()
                ),
                (
                    "2026-03-08T09:00:00-04:00".into(),
                    "2026-03-08".into(),
                    "09:00".into()
                ),
            ]
        );
    }

    #[test]
    fn nearest_picks_by_distance_and_returns_in_order() {
        let utc = TimeZone::UTC;
        let window = TimeWindow {
            start: ts("2026-03-01T00:00:00Z"),
            end: ts("2026-03-31T00:00:00Z"),
        };
        let slots = localize(
            &[
                slot("2026-03-09T08:00:00Z"),
                slot("2026-03-09T09:00:00Z"),
                slot("2026-03-09T10:00:00Z"),
                slot("2026-03-09T11:00:00Z"),
                slot("2026-03-10T09:00:00Z"),
            ],
            &utc,
            &window,
        );
        let near = nearest(&slots, ts("2026-03-09T10:00:00Z"), 3);
        let got: Vec<String> = near
            .iter()
            .map(|s| s.start.timestamp().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "2026-03-09T08:00:00Z",
                "2026-03-09T09:00:00Z",
                "2026-03-09T11:00:00Z"
            ]
        );
        assert!(nearest(&[], ts("2026-03-09T10:00:00Z"), 3).is_empty());
    }
}
