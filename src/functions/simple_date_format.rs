//! Java `SimpleDateFormat` patterns, as used by KDA's CHAR_TO_TIMESTAMP and
//! TIMESTAMP_TO_CHAR: a tokenizer, a parser and a formatter (English names, UTC).
//!
//! Pattern language: runs of the same ASCII letter are fields (`yyyy`, `MM`, `dd`, `HH`,
//! `hh`, `mm`, `ss`, `SSS`, `a`, `E`, `z`, `Z`, `X`, also `G Y L w W D F u k K`); text in
//! single quotes is literal (`'T'`), `''` is a quote; every other non-letter character is
//! literal; any other ASCII letter is an error ("illegal pattern character").
//!
//! Parsing follows Java's non-lenient `SimpleDateFormat.parse(String)`:
//! * fields absent from the pattern default to 1970-01-01 00:00:00.000;
//! * parsing stops at the end of the pattern and the rest of the input is ignored (the
//!   documented oddity: `'yyyy-mm'` on `'2011-02-08 07:23:19'` gives 2011-01-01 00:02:00);
//! * spaces and tabs before a field are skipped; literals must match exactly;
//! * a numeric field takes all consecutive digits, or exactly its width when the next
//!   field follows without a literal in between (`yyyyMMdd`);
//! * `S` is a number of milliseconds (Java's behaviour: `ss.S` on `07.5` is 5 ms);
//! * years are taken literally, without Java's two-digit-year pivot (documented: `'y'` on
//!   `'10'` is year 0010);
//! * out-of-range values (month 13, 31 February, hour 24 with `HH`, minute 60) are errors;
//! * `E`, `u`, `w`, `W`, `F` are checked for syntax but do not change the result (the
//!   date comes from year, month and day, as in Java when those are given); `Y` is read
//!   as the year; `D` sets the date when month and day are absent; `H`/`k` win over
//!   `h`/`K` + `a`;
//! * time zones (`z`, `Z`, `X`): `Z`, `UTC`, `GMT`, `UT`, optionally followed by an
//!   offset, or a numeric offset `±hh`, `±hhmm`, `±hh:mm`; the result is the UTC instant.
//!   Zone names such as `PST` are rejected rather than guessed.

use super::calendar::{civil_from_days, days_from_civil, days_in_month, is_leap_year, split_millis, weekday_sunday0};
use super::common::{MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND};

/// A piece of a SimpleDateFormat pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Field { letter: char, count: usize },
}

const PATTERN_LETTERS: &str = "GyYMLwWDdFEuaHkKhmsSzZX";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Splits a pattern into literal text and fields.
pub fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                lit.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quote in pattern '{pattern}'")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        lit.push(c);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() {
            if !PATTERN_LETTERS.contains(c) {
                return Err(format!("illegal pattern character '{c}' in pattern '{pattern}'"));
            }
            if !lit.is_empty() {
                out.push(Token::Literal(std::mem::take(&mut lit)));
            }
            let mut count = 1;
            while chars.get(i + count) == Some(&c) {
                count += 1;
            }
            out.push(Token::Field { letter: c, count });
            i += count;
            continue;
        }
        lit.push(c);
        i += 1;
    }
    if !lit.is_empty() {
        out.push(Token::Literal(lit));
    }
    Ok(out)
}

fn is_numeric_field(t: &Token) -> bool {
    match t {
        Token::Field {
            letter: 'M' | 'L',
            count,
        } => *count <= 2,
        Token::Field { letter, .. } => "yYwWDdFuHkKhmsS".contains(*letter),
        Token::Literal(_) => false,
    }
}

/// Field values collected while parsing.
#[derive(Debug, Default)]
struct Fields {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour_of_day: Option<i64>,
    hour_1_24: Option<i64>,
    hour_1_12: Option<i64>,
    hour_0_11: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    milli: Option<i64>,
    offset_ms: Option<i64>,
}

struct Cursor<'a> {
    text: &'a [char],
    pos: usize,
}

impl Cursor<'_> {
    fn skip_blanks(&mut self) {
        while matches!(self.text.get(self.pos), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    fn number(&mut self, max_len: Option<usize>) -> Option<i64> {
        let limit = max_len.map_or(self.text.len(), |m| (self.pos + m).min(self.text.len()));
        let start = self.pos;
        let mut v: i64 = 0;
        while self.pos < limit {
            let Some(d) = self.text[self.pos].to_digit(10) else {
                break;
            };
            v = v.checked_mul(10)?.checked_add(d as i64)?;
            self.pos += 1;
        }
        if self.pos == start { None } else { Some(v) }
    }

    /// Longest case-insensitive match among `names`; returns its index.
    fn one_of(&mut self, names: &[&str]) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, name) in names.iter().enumerate() {
            let n = name.chars().count();
            if self.pos + n > self.text.len() {
                continue;
            }
            let matches = self.text[self.pos..self.pos + n]
                .iter()
                .zip(name.chars())
                .all(|(a, b)| a.to_lowercase().eq(b.to_lowercase()));
            if matches && best.is_none_or(|(_, len)| n > len) {
                best = Some((i, n));
            }
        }
        let (i, n) = best?;
        self.pos += n;
        Some(i)
    }

    /// `±hh`, `±hhmm` or `±hh:mm` → milliseconds east of UTC.
    fn numeric_offset(&mut self) -> Option<i64> {
        let sign = match self.text.get(self.pos)? {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        self.pos += 1;
        let digits = |c: &mut Cursor, n: usize| -> Option<i64> {
            let start = c.pos;
            let v = c.number(Some(n))?;
            (c.pos - start == n).then_some(v)
        };
        let hours = digits(self, 2)?;
        let minutes = if self.text.get(self.pos) == Some(&':') {
            self.pos += 1;
            digits(self, 2)?
        } else if self.text.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            digits(self, 2)?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * (hours * MILLIS_PER_HOUR + minutes * MILLIS_PER_MINUTE))
    }

    fn zone(&mut self) -> Option<i64> {
        if matches!(self.text.get(self.pos), Some('+' | '-')) {
            return self.numeric_offset();
        }
        let name = self.one_of(&["UTC", "GMT", "UT", "Z"])?;
        if name == 3 {
            return Some(0);
        }
        if matches!(self.text.get(self.pos), Some('+' | '-')) {
            return self.numeric_offset();
        }
        Some(0)
    }
}

/// Parses `text` with a tokenized pattern; returns milliseconds since the epoch (UTC).
pub fn parse(tokens: &[Token], text: &str) -> Result<i64, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut c = Cursor { text: &chars, pos: 0 };
    let mut f = Fields::default();
    let fail = |why: &str| Err(format!("'{text}' does not match the format: {why}"));
    for (k, token) in tokens.iter().enumerate() {
        let (letter, count) = match token {
            Token::Literal(l) => {
                for lc in l.chars() {
                    if c.text.get(c.pos) != Some(&lc) {
                        return fail(&format!("expected '{lc}' at position {}", c.pos + 1));
                    }
                    c.pos += 1;
                }
                continue;
            }
            Token::Field { letter, count } => (*letter, *count),
        };
        c.skip_blanks();
        if c.pos >= chars.len() {
            return fail("the text ends too early");
        }
        let at = c.pos + 1;
        if is_numeric_field(token) {
            let abutting = tokens.get(k + 1).is_some_and(is_numeric_field);
            let Some(v) = c.number(abutting.then_some(count)) else {
                return fail(&format!("expected a number at position {at}"));
            };
            let slot = match letter {
                'y' | 'Y' => &mut f.year,
                'M' | 'L' => &mut f.month,
                'd' => &mut f.day,
                'D' => &mut f.day_of_year,
                'H' => &mut f.hour_of_day,
                'k' => &mut f.hour_1_24,
                'h' => &mut f.hour_1_12,
                'K' => &mut f.hour_0_11,
                'm' => &mut f.minute,
                's' => &mut f.second,
                'S' => &mut f.milli,
                // w W F u: accepted, not used to compute the date.
                _ => continue,
            };
            *slot = Some(v);
            continue;
        }
        match letter {
            'M' | 'L' => {
                let short: Vec<&str> = MONTHS.iter().map(|m| &m[..3]).collect();
                let names: Vec<&str> = MONTHS.iter().copied().chain(short).collect();
                let Some(i) = c.one_of(&names) else {
                    return fail(&format!("expected a month name at position {at}"));
                };
                f.month = Some((i % 12) as i64 + 1);
            }
            'E' => {
                let short: Vec<&str> = DAYS.iter().map(|d| &d[..3]).collect();
                let names: Vec<&str> = DAYS.iter().copied().chain(short).collect();
                if c.one_of(&names).is_none() {
                    return fail(&format!("expected a day name at position {at}"));
                }
            }
            'a' => match c.one_of(&["AM", "PM"]) {
                Some(i) => f.pm = Some(i == 1),
                None => return fail(&format!("expected AM or PM at position {at}")),
            },
            'G' => match c.one_of(&["AD", "BC"]) {
                Some(i) => f.bc = i == 1,
                None => return fail(&format!("expected AD or BC at position {at}")),
            },
            'z' | 'Z' | 'X' => match c.zone() {
                Some(off) => f.offset_ms = Some(off),
                None => return fail(&format!("expected a UTC offset at position {at}")),
            },
            other => return Err(format!("unsupported pattern letter '{other}'")),
        }
    }
    resolve(&f).map_err(|why| format!("'{text}' is not a valid date/time: {why}"))
}

fn check(v: Option<i64>, lo: i64, hi: i64, what: &str) -> Result<Option<i64>, String> {
    match v {
        Some(v) if v < lo || v > hi => Err(format!("{what} {v} is out of range")),
        v => Ok(v),
    }
}

/// Computes the instant from parsed fields (non-lenient).
fn resolve(f: &Fields) -> Result<i64, String> {
    let year_of_era = check(f.year, 1, 292_000_000, "year")?.unwrap_or(1970);
    let year = if f.bc { 1 - year_of_era } else { year_of_era };
    let month = check(f.month, 1, 12, "month")?;
    let day = match f.day {
        Some(d) => {
            let max = days_in_month(year, month.unwrap_or(1) as u32) as i64;
            check(Some(d), 1, max, "day")?
        }
        None => None,
    };
    let days = match (month, day, f.day_of_year) {
        (None, None, Some(doy)) => {
            let max = if is_leap_year(year) { 366 } else { 365 };
            let doy = check(Some(doy), 1, max, "day of year")?.unwrap_or(1);
            days_from_civil(year, 1, 1) + doy - 1
        }
        _ => days_from_civil(year, month.unwrap_or(1) as u32, day.unwrap_or(1) as u32),
    };
    let pm = if f.pm == Some(true) { 12 } else { 0 };
    let hour = if let Some(h) = check(f.hour_of_day, 0, 23, "hour")? {
        h
    } else if let Some(k) = check(f.hour_1_24, 1, 24, "hour")? {
        k % 24
    } else if let Some(h) = check(f.hour_1_12, 1, 12, "hour")? {
        h % 12 + pm
    } else if let Some(k) = check(f.hour_0_11, 0, 11, "hour")? {
        k + pm
    } else {
        pm
    };
    let minute = check(f.minute, 0, 59, "minute")?.unwrap_or(0);
    let second = check(f.second, 0, 59, "second")?.unwrap_or(0);
    let milli = check(f.milli, 0, 999, "millisecond")?.unwrap_or(0);
    let local = days
        .checked_mul(super::common::MILLIS_PER_DAY)
        .and_then(|d| {
            d.checked_add(hour * MILLIS_PER_HOUR + minute * MILLIS_PER_MINUTE + second * MILLIS_PER_SECOND + milli)
        })
        .ok_or("out of range")?;
    local
        .checked_sub(f.offset_ms.unwrap_or(0))
        .ok_or_else(|| "out of range".to_string())
}

/// Formats milliseconds since the epoch (UTC) with a tokenized pattern.
pub fn format(tokens: &[Token], ms: i64) -> String {
    let (days, ms_of_day) = split_millis(ms);
    let (year, month, day) = civil_from_days(days);
    let dow = weekday_sunday0(days);
    let hour = ms_of_day / MILLIS_PER_HOUR;
    let minute = ms_of_day / MILLIS_PER_MINUTE % 60;
    let second = ms_of_day / MILLIS_PER_SECOND % 60;
    let milli = ms_of_day % MILLIS_PER_SECOND;
    let jan1 = days_from_civil(year, 1, 1);
    let day_of_year = days - jan1 + 1;
    // US weeks (as Java's default locale on KDA): Sunday first, week 1 contains 1 January.
    let (week_year, week_of_year) = {
        let next_jan1 = days_from_civil(year + 1, 1, 1);
        if days >= next_jan1 - weekday_sunday0(next_jan1) as i64 {
            (year + 1, 1)
        } else {
            (year, (day_of_year - 1 + weekday_sunday0(jan1) as i64) / 7 + 1)
        }
    };
    let first_of_month = days - day as i64 + 1;
    let week_of_month = (day as i64 - 1 + weekday_sunday0(first_of_month) as i64) / 7 + 1;
    let era_year = |y: i64| if y > 0 { y } else { 1 - y };

    let mut out = String::new();
    let num = |out: &mut String, v: i64, width: usize| {
        out.push_str(&format!("{v:0width$}"));
    };
    for t in tokens {
        let (letter, count) = match t {
            Token::Literal(l) => {
                out.push_str(l);
                continue;
            }
            Token::Field { letter, count } => (*letter, *count),
        };
        match letter {
            'G' => out.push_str(if year > 0 { "AD" } else { "BC" }),
            'y' | 'Y' => {
                let y = era_year(if letter == 'y' { year } else { week_year });
                if count == 2 {
                    num(&mut out, y % 100, 2)
                } else {
                    num(&mut out, y, count)
                }
            }
            'M' | 'L' => match count {
                1 | 2 => num(&mut out, month as i64, count),
                3 => out.push_str(&MONTHS[month as usize - 1][..3]),
                _ => out.push_str(MONTHS[month as usize - 1]),
            },
            'w' => num(&mut out, week_of_year, count),
            'W' => num(&mut out, week_of_month, count),
            'D' => num(&mut out, day_of_year, count),
            'd' => num(&mut out, day as i64, count),
            'F' => num(&mut out, (day as i64 - 1) / 7 + 1, count),
            'E' => {
                let name = DAYS[dow as usize];
                out.push_str(if count <= 3 { &name[..3] } else { name });
            }
            'u' => num(&mut out, if dow == 0 { 7 } else { dow as i64 }, count),
            'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            'H' => num(&mut out, hour, count),
            'k' => num(&mut out, if hour == 0 { 24 } else { hour }, count),
            'K' => num(&mut out, hour % 12, count),
            'h' => num(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 }, count),
            'm' => num(&mut out, minute, count),
            's' => num(&mut out, second, count),
            'S' => num(&mut out, milli, count),
            'z' => out.push_str(if count < 4 { "UTC" } else { "Coordinated Universal Time" }),
            'Z' => out.push_str("+0000"),
            'X' => out.push('Z'),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{format_timestamp, parse_timestamp};

    fn p(pattern: &str, text: &str) -> Result<String, String> {
        parse(&tokenize(pattern)?, text).map(format_timestamp)
    }

    fn f(pattern: &str, ts: &str) -> String {
        format(&tokenize(pattern).unwrap(), parse_timestamp(ts).unwrap())
    }

    #[test]
    fn tokenizes_quotes_and_letters() {
        assert_eq!(
            tokenize("yyyy-MM-dd'T'HH''mm").unwrap(),
            vec![
                Token::Field { letter: 'y', count: 4 },
                Token::Literal("-".into()),
                Token::Field { letter: 'M', count: 2 },
                Token::Literal("-".into()),
                Token::Field { letter: 'd', count: 2 },
                Token::Literal("T".into()),
                Token::Field { letter: 'H', count: 2 },
                Token::Literal("'".into()),
                Token::Field { letter: 'm', count: 2 },
            ]
        );
        assert_eq!(tokenize("'o''clock'").unwrap(), vec![Token::Literal("o'clock".into())]);
        assert!(tokenize("yyyy-MM-dd q").is_err());
        assert!(tokenize("'abc").is_err());
    }

    #[test]
    fn parses_documented_examples() {
        assert_eq!(
            p("yyyy-MM-dd HH:mm:ss", "2011-02-08 07:23:19").unwrap(),
            "2011-02-08 07:23:19.000"
        );
        // Documented oddity: mm is minutes, the rest of the input is ignored.
        assert_eq!(p("yyyy-mm", "2011-02-08 07:23:19").unwrap(), "2011-01-01 00:02:00.000");
        // Documented: 'y' with two digits is taken literally (year 0010).
        assert_eq!(p("MMM dd,y", "March 7, 10").unwrap(), "0010-03-07 00:00:00.000");
        assert_eq!(p("MMM d, yyyy", "Mar 7, 2010").unwrap(), "2010-03-07 00:00:00.000");
        assert_eq!(p("HH:mm", "13:45").unwrap(), "1970-01-01 13:45:00.000");
        assert_eq!(p("yyyy", "2004").unwrap(), "2004-01-01 00:00:00.000");
    }

    #[test]
    fn parses_more_fields() {
        assert_eq!(
            p("yyyy-MM-dd'T'HH:mm:ss.SSS", "2018-06-13T14:11:05.766").unwrap(),
            "2018-06-13 14:11:05.766"
        );
        assert_eq!(
            p("yyyyMMddHHmmss", "20180613141105").unwrap(),
            "2018-06-13 14:11:05.000"
        );
        assert_eq!(
            p("dd/MMM/yyyy:HH:mm:ss Z", "10/Oct/2000:13:55:36 -0700").unwrap(),
            "2000-10-10 20:55:36.000"
        );
        assert_eq!(
            p("yyyy-MM-dd'T'HH:mm:ssX", "2000-10-10T13:55:36Z").unwrap(),
            "2000-10-10 13:55:36.000"
        );
        assert_eq!(
            p("yyyy-MM-dd'T'HH:mm:ssXXX", "2000-10-10T13:55:36+02:00").unwrap(),
            "2000-10-10 11:55:36.000"
        );
        assert_eq!(
            p("yyyy-MM-dd HH:mm z", "2000-10-10 13:55 UTC").unwrap(),
            "2000-10-10 13:55:00.000"
        );
        assert_eq!(p("hh:mm a", "12:30 AM").unwrap(), "1970-01-01 00:30:00.000");
        assert_eq!(p("hh:mm a", "01:30 pm").unwrap(), "1970-01-01 13:30:00.000");
        assert_eq!(
            p("EEE, d MMMM yyyy", "Tue, 8 February 2011").unwrap(),
            "2011-02-08 00:00:00.000"
        );
        assert_eq!(p("ss.S", "07.5").unwrap(), "1970-01-01 00:00:07.005");
        assert_eq!(p("yyyy D", "2020 366").unwrap(), "2020-12-31 00:00:00.000");
        assert_eq!(p("yyyy-MM-dd", "  2020-01-02").unwrap(), "2020-01-02 00:00:00.000");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(p("yyyy-MM-dd", "2011-13-01").is_err());
        assert!(p("yyyy-MM-dd", "2011-02-29").is_err());
        assert!(p("yyyy-MM-dd", "2012-02-30").is_err());
        assert!(p("HH:mm", "24:00").is_err());
        assert!(p("HH:mm", "12:60").is_err());
        assert!(p("yyyy-MM-dd", "2011/02/01").is_err());
        assert!(p("yyyy-MM-dd", "2011-02").is_err());
        assert!(p("yyyy-MM-dd HH:mm z", "2000-10-10 13:55 PST").is_err());
        assert!(p("yyyy", "abcd").is_err());
        assert_eq!(p("yyyy-MM-dd", "2012-02-29").unwrap(), "2012-02-29 00:00:00.000");
    }

    #[test]
    fn formats() {
        let ts = "2011-02-08 07:23:19.045";
        assert_eq!(f("yyyy-MM-dd HH:mm:ss.SSS", ts), "2011-02-08 07:23:19.045");
        assert_eq!(f("yy/M/d", ts), "11/2/8");
        assert_eq!(f("y", ts), "2011");
        assert_eq!(f("MMM MMMM", ts), "Feb February");
        assert_eq!(f("E EEEE", ts), "Tue Tuesday");
        assert_eq!(f("hh:mm a", ts), "07:23 AM");
        assert_eq!(f("h a", "2011-02-08 00:05:00"), "12 AM");
        assert_eq!(f("h a k", "2011-02-08 12:05:00"), "12 PM 12");
        assert_eq!(f("k", "2011-02-08 00:05:00"), "24");
        assert_eq!(f("yyyy-MM-dd'T'HH:mm:ss'Z'", ts), "2011-02-08T07:23:19Z");
        assert_eq!(f("D F u", ts), "39 2 2");
        assert_eq!(f("S", ts), "45");
        assert_eq!(f("z Z X", ts), "UTC +0000 Z");
        assert_eq!(f("''yyyy''", ts), "'2011'");
        // US week numbering: 2011-01-01 is a Saturday in week 1; Sunday 2012-12-30 starts
        // the week of 2013-01-01, which is week 1 of week-year 2013.
        assert_eq!(f("w W", "2011-01-01 00:00:00"), "1 1");
        assert_eq!(f("w W", "2011-01-02 00:00:00"), "2 2");
        assert_eq!(f("YYYY w", "2012-12-30 00:00:00"), "2013 1");
        assert_eq!(f("YYYY w", "2012-12-29 00:00:00"), "2012 52");
        assert_eq!(f("G yyyy", "1969-12-31 23:59:59"), "AD 1969");
    }
}

/// The tokenized formats of one batch, keyed by the format text, so a format column
/// repeating one pattern is tokenized once per batch.
#[derive(Default)]
pub(crate) struct FormatCache<'a> {
    map: std::collections::HashMap<&'a str, std::sync::Arc<Vec<Token>>>,
}

impl<'a> FormatCache<'a> {
    pub(crate) fn get(
        &mut self,
        function: &str,
        pattern: &'a str,
    ) -> datafusion::common::Result<std::sync::Arc<Vec<Token>>> {
        if let Some(t) = self.map.get(pattern) {
            return Ok(std::sync::Arc::clone(t));
        }
        let tokens = std::sync::Arc::new(
            tokenize(pattern).map_err(|e| datafusion::error::DataFusionError::Execution(format!("{function}: {e}")))?,
        );
        self.map.insert(pattern, std::sync::Arc::clone(&tokens));
        Ok(tokens)
    }
}
