//! Timestamp text in and out: KDA renders and parses `yyyy-MM-dd HH:mm:ss.SSS` in UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Milliseconds since the Unix epoch, the unit of ROWTIME and every TIMESTAMP.
pub type Millis = i64;

/// Parses a timestamp as KDA accepts it on input (A11): `yyyy-MM-dd`, or date and time
/// separated by a space or `T`, with 0 to 9 fractional digits (truncated to
/// milliseconds), and an optional trailing `Z`.
pub fn parse_timestamp(text: &str) -> Option<Millis> {
    let s = text.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    if s.len() == 10 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    let s = s.replacen('T', " ", 1);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m.to_string(), f),
        None => (s.clone(), ""),
    };
    if !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let dt = NaiveDateTime::parse_from_str(&main, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(&main, "%Y-%m-%d %H:%M"))
        .ok()?;
    let mut millis: i64 = 0;
    for (i, c) in frac.chars().take(3).enumerate() {
        millis += (c as i64 - '0' as i64) * 10i64.pow(2 - i as u32);
    }
    Some(dt.and_utc().timestamp_millis() + millis)
}

/// Renders milliseconds as `yyyy-MM-dd HH:mm:ss.SSS` (the conformance and output format).
pub fn format_timestamp(ms: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => format!("<invalid timestamp {ms}>"),
    }
}

/// The current wall-clock time in milliseconds.
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_iso_variants() {
        let t = parse_timestamp("2024-03-01 12:00:09.999").unwrap();
        assert_eq!(format_timestamp(t), "2024-03-01 12:00:09.999");
        assert_eq!(parse_timestamp("2024-03-01T12:00:09.999123"), Some(t));
        assert_eq!(parse_timestamp("2024-03-01T12:00:09.9991Z"), Some(t));
        assert_eq!(
            format_timestamp(parse_timestamp("2024-03-01").unwrap()),
            "2024-03-01 00:00:00.000"
        );
        assert_eq!(
            parse_timestamp("1992-02-14 18:35:44.0").map(format_timestamp).unwrap(),
            "1992-02-14 18:35:44.000"
        );
        assert!(parse_timestamp("n/a").is_none());
    }
}
