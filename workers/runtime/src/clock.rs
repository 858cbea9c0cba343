//! Timestamps as imgflow stores them.
use chrono::{SecondsFormat, Utc};

/// Now as RFC 3339 UTC with microseconds: fixed width, so timestamps sort as strings, which the
/// store stage's "newer labels win" condition relies on.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `delay` from now, in [`now_rfc3339`]'s form.
pub fn rfc3339_after(delay: std::time::Duration) -> String {
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    (Utc::now() + delay).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Normalises an RFC 3339 time from elsewhere (S3 event times have milliseconds) to
/// [`now_rfc3339`]'s form; keeps the input when it does not parse.
pub fn normalize_rfc3339(value: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        })
        .unwrap_or_else(|_| value.to_owned())
}

/// Seconds from `earlier` to `later` (RFC 3339), when both parse.
pub fn seconds_between(earlier: &str, later: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(earlier).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(later).ok()?;
    Some((b - a).num_microseconds()? as f64 / 1e6)
}

/// How long from now until `time` (RFC 3339); zero when it has passed or does not parse.
pub fn until(time: &str) -> std::time::Duration {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .and_then(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_sortable() {
        let a = normalize_rfc3339("2026-11-27T03:40:11.5Z");
        let b = normalize_rfc3339("2026-11-27T03:40:11.532Z");
        assert_eq!(a, "2026-11-27T03:40:11.500000Z");
        assert!(a < b);
        assert_eq!(now_rfc3339().len(), a.len());
        assert_eq!(normalize_rfc3339("garbage"), "garbage");
        assert_eq!(seconds_between(&a, &b), Some(0.032));
        assert_eq!(until(&a), std::time::Duration::ZERO, "in the past");
        let soon = until(&rfc3339_after(std::time::Duration::from_secs(60)));
        assert!(
            soon > std::time::Duration::from_secs(55) && soon <= std::time::Duration::from_secs(60)
        );
    }
}
