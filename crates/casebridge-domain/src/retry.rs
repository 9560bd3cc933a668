//! Retry policies: when to try a failed job again, and when to give up (dead letter).

use std::time::Duration;

use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// `initial * factor^(n-1)`, capped at `max`.
    Exponential {
        initial: Duration,
        factor: f64,
        max: Duration,
    },
    /// The n-th retry waits the n-th delay; past the end, the last delay repeats.
    Schedule(Vec<Duration>),
}

/// How a job kind is retried.
///
/// Invariant: a job is retried only while `attempts < max_attempts` and, when `window` is set,
/// only while the next attempt would start within `window` of the first attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Fraction of the delay added or removed at random: 0.2 means ±20 %.
    pub jitter: f64,
    pub max_attempts: u32,
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(Timestamp),
    GiveUp,
}

impl RetryPolicy {
    /// A sensible default for CRM operations: 5 s doubling to 1 h, 20 attempts.
    pub fn standard() -> Self {
        Self {
            backoff: Backoff::Exponential {
                initial: Duration::from_secs(5),
                factor: 2.0,
                max: Duration::from_secs(3600),
            },
            jitter: 0.2,
            max_attempts: 20,
            window: None,
        }
    }

    /// The delay before retry number `attempts_done` (1 = the first retry), before jitter.
    pub fn base_delay(&self, attempts_done: u32) -> Duration {
        let n = attempts_done.max(1);
        match &self.backoff {
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => {
                let secs = initial.as_secs_f64() * factor.powi(n as i32 - 1);
                if !secs.is_finite() || secs >= max.as_secs_f64() {
                    *max
                } else {
                    Duration::from_secs_f64(secs)
                }
            }
            Backoff::Schedule(delays) => delays
                .get(n as usize - 1)
                .or(delays.last())
                .copied()
                .unwrap_or(Duration::from_secs(60)),
        }
    }

    /// Decides what happens after a failed attempt.
    ///
    /// `random` is a number in `[0, 1)` supplied by the caller (so this stays pure and testable).
    /// `retry_after` (from a server's `Retry-After`) can only lengthen the delay, and never past
    /// the window.
    pub fn decide(
        &self,
        attempts_done: u32,
        first_attempt_at: Timestamp,
        now: Timestamp,
        retry_after: Option<Duration>,
        random: f64,
    ) -> RetryDecision {
        if attempts_done >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let base = self.base_delay(attempts_done);
        let spread = (random.clamp(0.0, 1.0) * 2.0 - 1.0) * self.jitter;
        let jittered = base.as_secs_f64() * (1.0 + spread);
        let mut delay = Duration::from_secs_f64(jittered.max(0.0));
        if let Some(ra) = retry_after {
            delay = delay.max(ra);
        }
        let mut at = add(now, delay);
        if let Some(window) = self.window {
            let deadline = add(first_attempt_at, window);
            if now >= deadline {
                return RetryDecision::GiveUp;
            }
            if at > deadline {
                at = deadline;
            }
        }
        RetryDecision::RetryAt(at)
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
    Timestamp::from_millisecond(t.as_millisecond().saturating_add(ms)).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::standard()
        };
        assert_eq!(p.base_delay(1), Duration::from_secs(5));
        assert_eq!(p.base_delay(2), Duration::from_secs(10));
        assert_eq!(p.base_delay(3), Duration::from_secs(20));
        assert_eq!(p.base_delay(30), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::standard();
        for r in [0.0, 0.25, 0.5, 0.999] {
            let RetryDecision::RetryAt(at) = p.decide(1, t(0), t(0), None, r) else {
                panic!("should retry")
            };
            let ms = at.as_millisecond();
            assert!((4000..=6000).contains(&ms), "{ms}");
        }
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::standard()
        };
        assert!(matches!(
            p.decide(2, t(0), t(0), None, 0.5),
            RetryDecision::RetryAt(_)
        ));
        assert_eq!(p.decide(3, t(0), t(0), None, 0.5), RetryDecision::GiveUp);
    }

    #[test]
    fn retry_after_only_lengthens_and_window_caps() {
        let p = RetryPolicy {
            backoff: Backoff::Schedule(vec![Duration::from_secs(60)]),
            jitter: 0.0,
            max_attempts: 100,
            window: Some(Duration::from_secs(3600)),
        };
        // Shorter Retry-After is ignored.
        assert_eq!(
            p.decide(1, t(0), t(0), Some(Duration::from_secs(1)), 0.5),
            RetryDecision::RetryAt(t(60_000))
        );
        // Longer Retry-After wins.
        assert_eq!(
            p.decide(1, t(0), t(0), Some(Duration::from_secs(600)), 0.5),
            RetryDecision::RetryAt(t(600_000))
        );
        // Never past the window.
        assert_eq!(
            p.decide(1, t(0), t(0), Some(Duration::from_secs(86_400)), 0.5),
            RetryDecision::RetryAt(t(3_600_000))
        );
        // At the window's end: dead letter.
        assert_eq!(
            p.decide(5, t(0), t(3_600_000), None, 0.5),
            RetryDecision::GiveUp
        );
    }
}
