//! XML Schema built-in types that xsd-parser maps to a plain `String`: `xs:dateTime` and
//! `xs:date`. build.rs points the generated code at these types, so a value that is not a
//! valid lexical form (wrong month, day 31 in April, 25:00, a time zone beyond ±14:00) is refused
//! at decode time and cannot be constructed at all.
//!
//! The value keeps its lexical form: what was decoded is what is re-encoded (a gateway must not
//! reformat a partner's timestamps), and two values are equal when their text is.

use std::fmt;
use std::str::FromStr;

use xsd_parser_types::quick_xml::{DeserializeBytesFromStr, SerializeBytesToString};

/// Why a lexical value is not an `xs:dateTime` / `xs:date`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid xs:{kind}: {rule}")]
pub struct LexicalError {
    /// `dateTime` or `date`.
    pub kind: &'static str,
    /// The part of the lexical form that is wrong.
    pub rule: &'static str,
}

/// An `xs:dateTime` in its lexical form, e.g. `2026-11-26T09:41:27.512Z`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime(String);

/// An `xs:date` in its lexical form, e.g. `1978-04-23` or `1978-04-23+02:00`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Date(String);

impl DateTime {
    /// The lexical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `secs` since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ` (UTC).
    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        DateTime(format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        ))
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Date {
    /// The lexical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tiny cursor over ASCII digits and separators.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    kind: &'static str,
}

impl<'a> Cursor<'a> {
    fn err(&self, rule: &'static str) -> LexicalError {
        LexicalError {
            kind: self.kind,
            rule,
        }
    }

    fn digits(&mut self, n: usize, rule: &'static str) -> Result<u32, LexicalError> {
        let slice = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.err(rule))?;
        let mut value = 0u32;
        for b in slice {
            if !b.is_ascii_digit() {
                return Err(self.err(rule));
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.pos += n;
        Ok(value)
    }

    fn expect(&mut self, byte: u8, rule: &'static str) -> Result<(), LexicalError> {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(rule))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// `-?YYYY-MM-DD` (years of more than four digits allowed, no leading zeros beyond four;
    /// year 0000 is not allowed in XSD 1.0).
    fn date(&mut self) -> Result<(), LexicalError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let year = &self.bytes[start..self.pos];
        if year.len() < 4 || (year.len() > 4 && year[0] == b'0') || year.len() > 9 {
            return Err(self.err("year"));
        }
        if year.iter().all(|b| *b == b'0') {
            return Err(self.err("year 0000"));
        }
        let year_value: u64 = year
            .iter()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        self.expect(b'-', "separator after year")?;
        let month = self.digits(2, "month")?;
        if !(1..=12).contains(&month) {
            return Err(self.err("month"));
        }
        self.expect(b'-', "separator after month")?;
        let day = self.digits(2, "day")?;
        let leap = (year_value % 4 == 0 && year_value % 100 != 0) || year_value % 400 == 0;
        let max_day = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > max_day {
            return Err(self.err("day"));
        }
        Ok(())
    }

    /// `hh:mm:ss(.s+)?`, with `24:00:00` allowed as end of day.
    fn time(&mut self) -> Result<(), LexicalError> {
        let hour = self.digits(2, "hour")?;
        self.expect(b':', "separator after hour")?;
        let minute = self.digits(2, "minute")?;
        self.expect(b':', "separator after minute")?;
        let second = self.digits(2, "second")?;
        let mut fraction_nonzero = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                fraction_nonzero |= self.bytes[self.pos] != b'0';
                self.pos += 1;
            }
            if self.pos == start {
                return Err(self.err("fraction of a second"));
            }
        }
        if minute > 59 || second > 59 {
            return Err(self.err("minute or second"));
        }
        if hour > 24 || (hour == 24 && (minute != 0 || second != 0 || fraction_nonzero)) {
            return Err(self.err("hour"));
        }
        Ok(())
    }

    /// `(Z|(+|-)hh:mm)?` up to ±14:00, then the end of the text.
    fn zone_and_end(&mut self) -> Result<(), LexicalError> {
        match self.peek() {
            None => return Ok(()),
            Some(b'Z') => self.pos += 1,
            Some(b'+' | b'-') => {
                self.pos += 1;
                let hours = self.digits(2, "time zone hours")?;
                self.expect(b':', "time zone separator")?;
                let minutes = self.digits(2, "time zone minutes")?;
                if minutes > 59 || hours > 14 || (hours == 14 && minutes != 0) {
                    return Err(self.err("time zone"));
                }
            }
            Some(_) => return Err(self.err("time zone")),
        }
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.err("trailing characters"))
        }
    }
}

impl FromStr for DateTime {
    type Err = LexicalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = Cursor {
            bytes: s.as_bytes(),
            pos: 0,
            kind: "dateTime",
        };
        c.date()?;
        c.expect(b'T', "T between date and time")?;
        c.time()?;
        c.zone_and_end()?;
        Ok(DateTime(s.to_owned()))
    }
}

impl FromStr for Date {
    type Err = LexicalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = Cursor {
            bytes: s.as_bytes(),
            pos: 0,
            kind: "date",
        };
        c.date()?;
        c.zone_and_end()?;
        Ok(Date(s.to_owned()))
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DeserializeBytesFromStr for DateTime {}
impl SerializeBytesToString for DateTime {}
impl DeserializeBytesFromStr for Date {}
impl SerializeBytesToString for Date {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_date_times() {
        for s in [
            "2026-11-26T09:41:27Z",
            "2026-11-26T09:41:27.512Z",
            "2026-11-26T09:41:27",
            "2024-02-29T00:00:00+14:00",
            "2026-01-01T24:00:00-05:30",
            "-0044-03-15T12:00:00Z",
            "12026-01-01T00:00:00Z",
        ] {
            assert!(s.parse::<DateTime>().is_ok(), "{s}");
        }
    }

    #[test]
    fn invalid_date_times_name_the_rule() {
        for (s, rule) in [
            ("2026-13-01T00:00:00Z", "month"),
            ("2026-04-31T00:00:00Z", "day"),
            ("2025-02-29T00:00:00Z", "day"),
            ("2026-01-01T25:00:00Z", "hour"),
            ("2026-01-01T24:00:01Z", "hour"),
            ("2026-01-01T10:60:00Z", "minute or second"),
            ("2026-01-01T10:00:00+15:00", "time zone"),
            ("2026-01-01 10:00:00Z", "T between date and time"),
            ("2026-01-01T10:00:00Z ", "trailing characters"),
            ("0000-01-01T10:00:00Z", "year 0000"),
            ("26-01-01T10:00:00Z", "year"),
            ("2026-01-01T10:00:00.Z", "fraction of a second"),
            ("garbage", "year"),
            ("", "year"),
        ] {
            let err = s.parse::<DateTime>().expect_err(s);
            assert_eq!(err.rule, rule, "{s}");
        }
    }

    #[test]
    fn dates() {
        assert!("1978-04-23".parse::<Date>().is_ok());
        assert!("1978-04-23Z".parse::<Date>().is_ok());
        assert!("1978-04-23+02:00".parse::<Date>().is_ok());
        assert!("1978-04-23T00:00:00".parse::<Date>().is_err());
        assert!("1978-4-23".parse::<Date>().is_err());
    }

    #[test]
    fn from_unix_is_valid_utc() {
        assert_eq!(DateTime::from_unix(0).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(
            DateTime::from_unix(951_782_400).as_str(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            DateTime::from_unix(1_795_687_287).as_str(),
            "2026-11-26T10:01:27Z"
        );
        for secs in [0, 1, 86_399, 1_700_000_000, 4_102_444_800] {
            let v = DateTime::from_unix(secs);
            assert!(v.as_str().parse::<DateTime>().is_ok(), "{v}");
        }
    }

    #[test]
    fn lexical_form_is_kept() {
        let v: DateTime = "2026-11-26T09:41:27.500+01:00".parse().expect("valid");
        assert_eq!(v.to_string(), "2026-11-26T09:41:27.500+01:00");
    }
}
