//! Time, injectable so tests can step past lockouts, grace windows and expiries.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time; only tests move it.
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time, to the microsecond (what storage keeps).
    pub fn now(&self) -> OffsetDateTime {
        let now =
            OffsetDateTime::now_utc() + Duration::seconds(self.offset_secs.load(Ordering::Relaxed));
        Self::truncate(now)
    }

    /// Drops sub-microsecond digits, which stored timestamps do not keep.
    pub fn truncate(at: OffsetDateTime) -> OffsetDateTime {
        at.replace_nanosecond(at.microsecond() * 1000)
            .expect("microseconds fit in nanoseconds")
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        self.offset_secs
            .fetch_add(by.whole_seconds(), Ordering::Relaxed);
    }
}

/// RFC 3339 UTC with exactly six fractional digits, so stored timestamps sort as text.
pub fn format(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_and_round_trips() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.5 UTC);
        let text = format(at);
        assert_eq!(text, "2026-01-02T03:04:05.500000Z");
        assert_eq!(parse(&text), Some(at));
    }

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::system();
        let twin = clock.clone();
        let before = twin.now();
        clock.advance(Duration::hours(1));
        assert!(twin.now() - before >= Duration::minutes(59));
    }
}
