//! Timestamp parsing for Graph's wire formats.
//!
//! Accepts `YYYY-MM-DDTHH:MM:SS[.f…]` with 0–9 fraction digits (Graph sends 0 on messages and
//! 7 on events; digits past microseconds are truncated) and an optional `Z` or `±HH:MM` offset
//! (no offset means UTC, as Graph reads it). A hand-written parser handles these; anything else
//! falls back to chrono's RFC 3339 parser. Values come out as microseconds since the Unix epoch.

/// Microseconds since the epoch for a DateTimeOffset string, or `None` if it is not one.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    match parse_fast(s.as_bytes()) {
        Some((local, offset_secs)) => Some(local - i64::from(offset_secs.unwrap_or(0)) * 1_000_000),
        None => chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_micros()),
    }
}

/// A local date-time without offset (`dateTimeTimeZone.dateTime`), as microseconds since the
/// epoch *as if it were UTC*, plus the offset in seconds if the string carried one.
pub fn parse_local_micros(s: &str) -> Option<(i64, Option<i32>)> {
    parse_fast(s.as_bytes())
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn parse_fast(b: &[u8]) -> Option<(i64, Option<i32>)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = i64::from(digits(&b[0..4])?);
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let s = digits(&b[17..19])?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset = match &b[i..] {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])? as i32;
            let om = digits(&[*m1, *m2])? as i32;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            Some(if *sign == b'-' { -v } else { v })
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Some((secs * 1_000_000 + micros, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_micros(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn zero_to_seven_digits_and_offsets() {
        assert_eq!(parse_timestamp_micros("2024-01-15T11:26:41Z"), Some(chrono_micros("2024-01-15T11:26:41Z")));
        assert_eq!(parse_timestamp_micros("2024-01-15T11:26:39.1524133Z"), Some(chrono_micros("2024-01-15T11:26:39.152413Z")));
        assert_eq!(parse_timestamp_micros("2024-01-15T11:26:39.1Z"), Some(chrono_micros("2024-01-15T11:26:39.1Z")));
        assert_eq!(parse_timestamp_micros("2024-01-15T11:26:41+05:30"), Some(chrono_micros("2024-01-15T05:56:41Z")));
        assert_eq!(parse_timestamp_micros("2024-01-15T11:26:41-08:00"), Some(chrono_micros("2024-01-15T19:26:41Z")));
        // No offset: read as UTC.
        assert_eq!(parse_timestamp_micros("2024-01-22T02:30:00.0000000"), Some(chrono_micros("2024-01-22T02:30:00Z")));
        assert_eq!(parse_timestamp_micros("0001-01-01T00:00:00Z"), Some(chrono_micros("0001-01-01T00:00:00Z")));
        assert_eq!(parse_timestamp_micros("1969-12-31T23:59:59.5Z"), Some(-500_000));
        assert_eq!(parse_timestamp_micros("2024-02-29T00:00:00Z"), Some(chrono_micros("2024-02-29T00:00:00Z")));
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01",
        ] {
            assert_eq!(parse_timestamp_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn agrees_with_chrono_on_many_dates() {
        let mut t = chrono::DateTime::parse_from_rfc3339("1899-03-01T00:00:00Z").unwrap().to_utc();
        for _ in 0..2000 {
            let s = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(parse_timestamp_micros(&s), Some(t.timestamp_micros()), "{s}");
            t += chrono::Duration::seconds(86_400 * 37 + 3_601) + chrono::Duration::microseconds(123_457);
        }
    }
}
