//! When to try again. The schedule is data (`webhooks.retry_schedule_secs`), the jitter spreads
//! retries of endpoints that failed together, a receiver's `Retry-After` is a floor, and an
//! endpoint that has not succeeded for `webhooks.disable_after_hours` is switched off.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::sender::{DeliveryOutcome, Verdict};
use crate::config::WebhookSettings;

#[derive(Clone, Debug, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
    max_retry_after: Duration,
}

impl RetrySchedule {
    /// The first attempt is made at once; `retries[i]` is the wait after attempt `i + 1`
    /// failed. An empty list means a single attempt.
    pub fn new(retries: Vec<Duration>, jitter: f64, max_retry_after: Duration) -> Self {
        Self {
            delays: retries,
            jitter: jitter.clamp(0.0, 0.5),
            max_retry_after,
        }
    }

    pub fn from_settings(s: &WebhookSettings) -> Self {
        Self::new(
            s.retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            s.jitter,
            Duration::from_secs(s.max_retry_after_secs),
        )
    }

    /// Attempts a message gets before it is given up: the first plus one per retry.
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The wait before the next attempt after `attempts_made` attempts have failed, or
    /// `None` when the schedule is used up. `jitter_unit` in [-1, 1] picks where in the
    /// jitter band the delay lands (see [`jitter_unit`]). A `Retry-After` longer than the
    /// scheduled delay wins, capped at `max_retry_after`.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        jitter_unit: f64,
    ) -> Option<Duration> {
        let scheduled = *self.delays.get((attempts_made as usize).checked_sub(1)?)?;
        let factor = 1.0 + self.jitter * jitter_unit.clamp(-1.0, 1.0);
        let jittered = scheduled.mul_f64(factor.max(0.0));
        let floor = retry_after
            .map(|r| r.min(self.max_retry_after))
            .unwrap_or_default();
        Some(jittered.max(floor))
    }
}

/// A uniform sample in [-1, 1] for [`RetrySchedule::next_delay`].
pub fn jitter_unit() -> f64 {
    rand::thread_rng().gen_range(-1.0..=1.0)
}

/// What to do with a message after one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// 410 Gone: the receiver asked us to stop; the endpoint is disabled.
    Gone,
    Retry {
        at: DateTime<Utc>,
        /// The receiver asked to slow down (429, or 503 with `Retry-After`): no message to
        /// this endpoint goes out before this.
        throttle_until: Option<DateTime<Utc>>,
    },
    /// The schedule is used up; the message stays in the log as failed.
    Exhausted,
}

/// The decision for an attempt, given how many attempts (this one included) were made.
pub fn decide(
    outcome: &DeliveryOutcome,
    attempts_made: u32,
    schedule: &RetrySchedule,
    now: DateTime<Utc>,
    jitter_unit: f64,
) -> Decision {
    match outcome.verdict() {
        Verdict::Delivered => Decision::Delivered,
        Verdict::Gone => Decision::Gone,
        Verdict::Failed => {
            match schedule.next_delay(attempts_made, outcome.retry_after, jitter_unit) {
                None => Decision::Exhausted,
                Some(delay) => {
                    let at =
                        now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                    let throttle_until = outcome
                        .retry_after
                        .filter(|_| outcome.is_throttled())
                        .map(|r| {
                            now + chrono::Duration::from_std(r.min(schedule.max_retry_after))
                                .unwrap_or_default()
                        });
                    Decision::Retry { at, throttle_until }
                }
            }
        }
    }
}

/// Whether an endpoint failing since `failing_since` (no success in between) is disabled.
pub fn should_disable(
    failing_since: DateTime<Utc>,
    now: DateTime<Utc>,
    disable_after: Duration,
) -> bool {
    match chrono::Duration::from_std(disable_after) {
        Ok(limit) => now - failing_since >= limit,
        Err(_) => false,
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the
/// past means "now"; anything unreadable is ignored.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::webhooks::sender::ErrorKind;
    use chrono::TimeZone;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    fn default_schedule() -> RetrySchedule {
        let settings = crate::config::Settings::defaults().unwrap();
        RetrySchedule::from_settings(&settings.webhooks)
    }

    fn failed(status: Option<u16>, retry_after: Option<u64>) -> DeliveryOutcome {
        DeliveryOutcome {
            status,
            latency: Duration::from_millis(20),
            retry_after: retry_after.map(Duration::from_secs),
            response_excerpt: None,
            error: status
                .is_none()
                .then(|| (ErrorKind::Connect, "connection refused".to_owned())),
            timestamp: 0,
        }
    }

    #[test]
    fn the_default_schedule_makes_ten_attempts_over_about_three_days() {
        let s = default_schedule();
        assert_eq!(s.attempts(), 10);
        assert_eq!(s.next_delay(1, None, 0.0), Some(Duration::from_secs(5)));
        let total: Duration = (1..10).map(|i| s.next_delay(i, None, 0.0).unwrap()).sum();
        let hours = total.as_secs_f64() / 3600.0;
        assert!((70.0..80.0).contains(&hours), "{hours} h");
        assert_eq!(s.next_delay(10, None, 0.0), None);
    }

    #[test]
    fn jitter_stays_inside_its_band_and_zero_stays_zero() {
        let s = RetrySchedule::new(secs(&[100, 0]), 0.2, Duration::from_secs(3600));
        assert_eq!(s.next_delay(1, None, -1.0), Some(Duration::from_secs(80)));
        assert_eq!(s.next_delay(1, None, 1.0), Some(Duration::from_secs(120)));
        assert_eq!(s.next_delay(2, None, 1.0), Some(Duration::ZERO));
        for _ in 0..100 {
            let d = s.next_delay(1, None, jitter_unit()).unwrap();
            assert!((80..=120).contains(&d.as_secs()), "{d:?}");
        }
    }

    #[test]
    fn retry_after_longer_than_the_schedule_wins_but_is_capped() {
        let s = RetrySchedule::new(secs(&[5, 300]), 0.0, Duration::from_secs(3600));
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(60)), 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(999_999)), 0.0),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn a_429_is_retried_no_sooner_than_retry_after_and_throttles_the_endpoint() {
        let s = RetrySchedule::new(secs(&[5, 300]), 0.0, Duration::from_secs(3600));
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap();
        let d = decide(&failed(Some(429), Some(30)), 1, &s, now, 0.0);
        assert_eq!(
            d,
            Decision::Retry {
                at: now + chrono::Duration::seconds(30),
                throttle_until: Some(now + chrono::Duration::seconds(30)),
            }
        );
    }

    #[test]
    fn success_gone_failure_and_exhaustion_are_told_apart() {
        let s = RetrySchedule::new(secs(&[5]), 0.0, Duration::from_secs(3600));
        let now = Utc::now();
        let mut ok = failed(Some(204), None);
        ok.error = None;
        assert_eq!(decide(&ok, 1, &s, now, 0.0), Decision::Delivered);
        assert_eq!(
            decide(&failed(Some(410), None), 1, &s, now, 0.0),
            Decision::Gone
        );
        assert_eq!(
            decide(&failed(Some(500), None), 1, &s, now, 0.0),
            Decision::Retry {
                at: now + chrono::Duration::seconds(5),
                throttle_until: None
            }
        );
        assert_eq!(
            decide(&failed(None, None), 2, &s, now, 0.0),
            Decision::Exhausted
        );
        // A redirect is a failure, not a success and not a reason to follow it.
        assert!(matches!(
            decide(&failed(Some(302), None), 1, &s, now, 0.0),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn an_endpoint_is_disabled_only_after_failing_for_the_whole_window() {
        let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let window = Duration::from_secs(120 * 3600);
        assert!(!should_disable(
            since,
            since + chrono::Duration::hours(119),
            window
        ));
        assert!(should_disable(
            since,
            since + chrono::Duration::hours(120),
            window
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
