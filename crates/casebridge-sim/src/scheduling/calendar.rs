//! Working hours and the slots they make. Pure: no I/O, no clock.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A weekly schedule of working hours in one time zone, like a Cal.com availability schedule:
/// each entry is a weekday with a start and end wall-clock time (end after start, same day).
#[derive(Debug, Clone)]
pub struct WeeklyHours {
    time_zone: TimeZone,
    windows: Vec<(Weekday, Time, Time)>,
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

const EVERY_DAY: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

impl WeeklyHours {
    /// An empty schedule in `time_zone` (an IANA name).
    ///
    /// # Panics
    /// If the time zone is unknown: simulator set-up is code, and a typo should stop the test.
    pub fn new(time_zone: &str) -> Self {
        Self {
            time_zone: TimeZone::get(time_zone)
                .unwrap_or_else(|_| panic!("unknown time zone `{time_zone}`")),
            windows: Vec::new(),
        }
    }

    /// Adds working hours on one weekday, `start` and `end` as `HH:MM`.
    ///
    /// # Panics
    /// If a time does not parse or `end` is not after `start`.
    pub fn with(mut self, day: Weekday, start: &str, end: &str) -> Self {
        let s: Time = start
            .parse()
            .unwrap_or_else(|_| panic!("`{start}` is not HH:MM"));
        let e: Time = end
            .parse()
            .unwrap_or_else(|_| panic!("`{end}` is not HH:MM"));
        assert!(e > s, "working hours must end after they start");
        self.windows.push((day, s, e));
        self
    }

    /// Monday to Friday, `start`–`end`.
    pub fn weekdays(time_zone: &str, start: &str, end: &str) -> Self {
        WEEKDAYS
            .iter()
            .fold(Self::new(time_zone), |h, d| h.with(*d, start, end))
    }

    /// Every day of the week, `start`–`end`.
    pub fn every_day(time_zone: &str, start: &str, end: &str) -> Self {
        EVERY_DAY
            .iter()
            .fold(Self::new(time_zone), |h, d| h.with(*d, start, end))
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The starts of every slot of `length` that fits in the working hours and starts within
    /// `[from, to]`, in order. Slots follow each other from the start of a window (Cal.com's
    /// default slot interval is the event length). A wall-clock start that does not exist (the
    /// clocks jump over it) is skipped; one that happens twice is taken at its first occurrence.
    pub fn slot_starts(
        &self,
        length: SignedDuration,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Timestamp> {
        if length <= SignedDuration::ZERO || to < from {
            return Vec::new();
        }
        let tz = &self.time_zone;
        let (Some(first), Some(last)) = (
            from.to_zoned(tz.clone()).date().yesterday().ok(),
            to.to_zoned(tz.clone()).date().tomorrow().ok(),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut day: Date = first;
        while day <= last {
            for (_, start, end) in self.windows.iter().filter(|(d, _, _)| *d == day.weekday()) {
                let end: DateTime = day.to_datetime(*end);
                let mut t: DateTime = day.to_datetime(*start);
                while let Ok(next) = t.checked_add(length) {
                    if next > end {
                        break;
                    }
                    let at = match tz.to_ambiguous_timestamp(t).offset() {
                        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(t).ok(),
                        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(t).ok(),
                        AmbiguousOffset::Gap { .. } => None,
                    };
                    if let Some(at) = at.filter(|a| *a >= from && *a <= to) {
                        out.push(at);
                    }
                    t = next;
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn slots_follow_wall_clock_hours_across_a_dst_change() {
        // New York moves from -05:00 to -04:00 on Sunday 2026-03-08.
        let hours = WeeklyHours::every_day("America/New_York", "09:00", "11:00");
        let starts = hours.slot_starts(
            SignedDuration::from_mins(60),
            ts("2026-03-07T00:00:00Z"),
            ts("2026-03-09T04:00:00Z"),
        );
        assert_eq!(
            starts,
            [
                ts("2026-03-07T14:00:00Z"),
                ts("2026-03-07T15:00:00Z"),
                ts("2026-03-08T13:00:00Z"),
                ts("2026-03-08T14:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_start_in_the_gap_is_skipped_and_a_repeated_one_taken_once() {
        let spring = WeeklyHours::every_day("America/New_York", "01:30", "03:30");
        let starts = spring.slot_starts(
            SignedDuration::from_mins(60),
            ts("2026-03-08T00:00:00Z"),
            ts("2026-03-08T12:00:00Z"),
        );
        // 01:30 EST exists, 02:30 does not (clocks jump to 03:00).
        assert_eq!(starts, [ts("2026-03-08T06:30:00Z")]);

        let fall = WeeklyHours::every_day("America/New_York", "01:00", "02:00");
        let starts = fall.slot_starts(
            SignedDuration::from_mins(30),
            ts("2026-11-01T00:00:00Z"),
            ts("2026-11-01T12:00:00Z"),
        );
        // 01:00 and 01:30 happen twice; the first (EDT, -04:00) is used.
        assert_eq!(
            starts,
            [ts("2026-11-01T05:00:00Z"), ts("2026-11-01T05:30:00Z")]
        );
    }

    #[test]
    fn slots_must_fit_and_weekends_are_off_on_weekdays() {
        let hours = WeeklyHours::weekdays("UTC", "09:00", "10:45");
        let starts = hours.slot_starts(
            SignedDuration::from_mins(30),
            ts("2026-03-06T00:00:00Z"), // Friday
            ts("2026-03-09T23:00:00Z"), // Monday
        );
        let times: Vec<String> = starts.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            times,
            [
                "2026-03-06T09:00:00Z",
                "2026-03-06T09:30:00Z",
                "2026-03-06T10:00:00Z",
                "2026-03-09T09:00:00Z",
                "2026-03-09T09:30:00Z",
                "2026-03-09T10:00:00Z",
            ]
        );
    }
}
