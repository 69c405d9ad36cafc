//! The RFC 3164 header of `syslog_auth`'s lines: `<PRI>`, a BSD timestamp read in UTC (the year worked out as
//! `collectors/syslog_time.py` does), a hostname and a `tag[pid]:`, on printable ASCII with one space between
//! the parts; anything else is None (Python reads the line). And the RFC 3339 text of epoch milliseconds.

use crate::normalise::days_from_civil;

pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
pub const SEVERITY_NAMES: [&str; 8] = [
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
];
pub const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

const DAY_MS: i64 = 86_400_000;
const MAX_RECEIVED_MS: i64 = 253_402_041_600_000; // collectors/syslog_time.py: _MAX_RECEIVED_MS
const FUTURE_SLACK_MS: i64 = 31 * 24 * 3600 * 1000;
const MAX_DIGITS: usize = 18; // an int that fits i64 whatever its digits
pub struct Header<'a> {
    pub facility: usize,
    pub severity: usize,
    pub timestamp_ms: i64,
    pub hostname: &'a str,
    pub appname: &'a str,
    pub procid: Option<&'a str>,
    pub message: &'a str,
}

pub fn header(text: &str, received_ms: i64) -> Option<Header<'_>> {
    let b = text.as_bytes();
    if b.is_empty() || !b.iter().all(|c| (0x20..=0x7e).contains(c)) || b[0] != b'<' {
        return None;
    }
    let close = b.iter().take(5).position(|&c| c == b'>')?;
    if !(2..=4).contains(&close) {
        return None;
    }
    let pri = digits(&b[1..close])? as usize;
    if pri > 191 {
        return None;
    }
    let mut pos = close + 1;
    // Mmm, spaces, day, one space, hh:mm:ss, one space (a year, a fraction or RFC 5424 go to Python)
    let month_text = text.get(pos..pos + 3)?;
    if !month_text.bytes().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month_text))? as i64
        + 1;
    pos += 3;
    let spaces = b[pos..].iter().take_while(|&&c| c == b' ').count();
    if spaces == 0 {
        return None;
    }
    pos += spaces;
    let day_len = b[pos..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&day_len) || b.get(pos + day_len) != Some(&b' ') {
        return None;
    }
    let day = digits(&b[pos..pos + day_len])?;
    pos += day_len + 1;
    let clock = b.get(pos..pos + 9)?;
    if clock[2] != b':' || clock[5] != b':' || clock[8] != b' ' {
        return None;
    }
    let (hour, minute, second) = (
        digits(&clock[0..2])?,
        digits(&clock[3..5])?,
        digits(&clock[6..8])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    pos += 9;
    let timestamp_ms = bsd_ms(month, day, (hour * 60 + minute) * 60 + second, received_ms)?;
    // HOSTNAME, one space, TAG `name[pid]:`, spaces, MSG
    let host_len = b[pos..].iter().take_while(|&&c| c != b' ').count();
    let hostname = &text[pos..pos + host_len];
    if host_len == 0 || hostname.bytes().any(|c| matches!(c, b'[' | b']' | b':')) {
        return None;
    }
    pos += host_len;
    if b.get(pos) != Some(&b' ') || matches!(b.get(pos + 1), None | Some(b' ')) {
        return None;
    }
    pos += 1;
    let name_len = b[pos..]
        .iter()
        .take_while(|&&c| !matches!(c, b' ' | b'[' | b']' | b':'))
        .count();
    if name_len == 0 {
        return None;
    }
    let appname = &text[pos..pos + name_len];
    pos += name_len;
    let mut procid = None;
    if b.get(pos) == Some(&b'[') {
        let pid_len = b[pos + 1..]
            .iter()
            .take_while(|&&c| !matches!(c, b']' | b' '))
            .count();
        if b.get(pos + 1 + pid_len) != Some(&b']') {
            return None;
        }
        procid = Some(&text[pos + 1..pos + 1 + pid_len]).filter(|p| !p.is_empty());
        pos += pid_len + 2;
    }
    if b.get(pos) != Some(&b':') {
        return None;
    }
    pos += 1;
    pos += b[pos..].iter().take_while(|&&c| c == b' ').count();
    Some(Header {
        facility: pri / 8,
        severity: pri % 8,
        timestamp_ms,
        hostname,
        appname,
        procid,
        message: &text[pos..],
    })
}

pub fn digits(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_DIGITS {
        return None;
    }
    text.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// `syslog_time.bsd_ms` in UTC without a year: the latest of next year down to eight years back that puts the
/// time no more than `FUTURE_SLACK_MS` after `received_ms`.
fn bsd_ms(month: i64, day: i64, seconds: i64, received_ms: i64) -> Option<i64> {
    if !(0..=MAX_RECEIVED_MS).contains(&received_ms) {
        return None;
    }
    let received_year = year_of(received_ms.div_euclid(DAY_MS));
    let limit = received_ms + FUTURE_SLACK_MS;
    for year in (received_year - 8..=received_year + 1).rev() {
        if let Some(days) = epoch_day(year, month, day) {
            let ms = days * DAY_MS + seconds * 1000;
            if ms <= limit {
                return Some(ms);
            }
        }
    }
    None
}

fn epoch_day(year: i64, month: i64, day: i64) -> Option<i64> {
    if !(1..=9999).contains(&year) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar year of a day counted from 1970-01-01.
fn year_of(epoch_day: i64) -> i64 {
    let z = epoch_day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// `model.ms_to_iso`: RFC 3339 UTC with milliseconds.
pub fn iso(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let year = year_of(days);
    let mut month = 1;
    let mut day = days - days_from_civil(year, 1, 1) + 1;
    while day > days_in_month(year, month) {
        day -= days_in_month(year, month);
        month += 1;
    }
    let (s, milli) = (in_day / 1000, in_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}
