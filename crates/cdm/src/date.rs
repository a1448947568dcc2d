//! Calendar dates as days since 1970-01-01 (the store's and the cohort engine's date type).

/// Days since 1970-01-01; negative before.
pub type Day = i32;

/// The NULL date (never a real day: far below year 0).
pub const NULL_DAY: Day = i32::MIN;

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in a month of a year (1-based month).
pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a valid civil date (proleptic Gregorian).
pub fn from_ymd(y: i32, m: u32, d: u32) -> Day {
    // Shift the year to start in March so the leap day is the last day of the year.
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as Day
}

/// The civil date (year, month, day) of a day number.
pub fn to_ymd(day: Day) -> (i32, u32, u32) {
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + if m <= 2 { 1 } else { 0 }) as i32;
    (y, m, d)
}

/// The calendar year of a day number.
pub fn year(day: Day) -> i32 {
    // 1901 to 2099 have a leap year every 4 years: there, counted from 1901-01-01 (day −25,202,
    // the start of a 4-year cycle of 1,461 days), the year is one division away.
    const FROM_1901: i32 = 25_202;
    if (-FROM_1901..47_482).contains(&day) {
        return 1901 + (4 * (day + FROM_1901) + 3) / 1461;
    }
    to_ymd(day).0
}

/// Parses `YYYY-MM-DD` or `YYYYMMDD`, optionally followed by a time part (`T…` or ` …`),
/// as exported by OHDSI tools and PostgreSQL. Returns None for anything else or an impossible date.
pub fn parse(s: &[u8]) -> Option<Day> {
    let (y, m, d, rest) = if s.len() >= 10 && s[4] == b'-' && s[7] == b'-' {
        (
            digits(&s[0..4])?,
            digits(&s[5..7])?,
            digits(&s[8..10])?,
            &s[10..],
        )
    } else if s.len() >= 8 && s[..8].iter().all(u8::is_ascii_digit) {
        (
            digits(&s[0..4])?,
            digits(&s[4..6])?,
            digits(&s[6..8])?,
            &s[8..],
        )
    } else {
        return None;
    };
    if !(rest.is_empty() || rest[0] == b' ' || rest[0] == b'T') {
        return None;
    }
    let (y, m, d) = (y as i32, m, d);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(from_ymd(y, m, d))
}

fn digits(s: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u32;
    }
    Some(v)
}

/// Formats a day number as `YYYY-MM-DD` (`NULL` for [`NULL_DAY`]).
pub fn format(day: Day) -> String {
    if day == NULL_DAY {
        return "NULL".to_string();
    }
    let (y, m, d) = to_ymd(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_equals_the_civil_dates_year() {
        for day in from_ymd(1890, 1, 1)..from_ymd(2110, 1, 1) {
            assert_eq!(year(day), to_ymd(day).0, "day {day}");
        }
        assert_eq!(year(from_ymd(2100, 2, 28)), 2100);
        assert_eq!(year(from_ymd(1900, 12, 31)), 1900);
        assert_eq!(year(from_ymd(1901, 1, 1)), 1901);
    }

    #[test]
    fn epoch_and_known_days() {
        assert_eq!(from_ymd(1970, 1, 1), 0);
        assert_eq!(from_ymd(2000, 3, 1), 11_017);
        assert_eq!(from_ymd(1969, 12, 31), -1);
        assert_eq!(parse(b"2000-02-29"), Some(from_ymd(2000, 2, 29)));
        assert_eq!(parse(b"20000229"), Some(from_ymd(2000, 2, 29)));
        assert_eq!(parse(b"2014-04-22 00:00:00"), Some(from_ymd(2014, 4, 22)));
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            &b"2020-13-45"[..],
            b"1900-02-29",
            b"2021-02-29",
            b"2020-00-10",
            b"2020-1-1",
            b"abc",
            b"",
            b"2020-01-01x",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn round_trips_every_day_for_five_centuries() {
        for day in from_ymd(1800, 1, 1)..from_ymd(2300, 1, 1) {
            let (y, m, d) = to_ymd(day);
            assert_eq!(from_ymd(y, m, d), day);
            assert_eq!(parse(format(day).as_bytes()), Some(day));
        }
    }
}
