//! Value syntax: durations and memory sizes as Flink reads them, URLs with
//! their credentials masked, and the check of a value against its key's
//! kind.

use std::time::Duration;

use super::keys::Kind;
use crate::error::{EngineError, Result};

pub(super) fn validate(name: &str, kind: Kind, value: &str) -> Result<()> {
    let bad = |accepted: &str| {
        Err(EngineError::Config(format!(
            "invalid value '{value}' for configuration key '{name}': expected {accepted}"
        )))
    };
    match kind {
        Kind::PositiveInt => match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(()),
            _ => bad("a positive integer"),
        },
        Kind::NonNegativeInt => match value.parse::<usize>() {
            Ok(_) => Ok(()),
            _ => bad("a non-negative integer"),
        },
        Kind::Port => match value.parse::<u16>() {
            Ok(_) => Ok(()),
            _ => bad("a port from 0 to 65535 (0: any free port)"),
        },
        Kind::Duration => match parse_duration(value) {
            Ok(_) => Ok(()),
            Err(_) => bad("a duration such as '60000', '60 s', '1 min' or '10s'"),
        },
        Kind::PositiveDuration => match parse_duration(value) {
            Ok(d) if !d.is_zero() => Ok(()),
            _ => bad("a duration above zero, such as '60000', '60 s', '1 min' or '10s'"),
        },
        Kind::MemorySize => match parse_memory_size(value) {
            Ok(_) => Ok(()),
            Err(_) => bad("a memory size such as '64mb', '512 kb' or '1gb'"),
        },
        Kind::Bool => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                bad("'true' or 'false'")
            }
        }
        Kind::Text | Kind::Secret | Kind::Url => Ok(()),
        Kind::OneOf(options) => {
            if options.iter().any(|o| o.eq_ignore_ascii_case(value)) {
                Ok(())
            } else {
                let mut uniq: Vec<String> = options.iter().map(|o| o.to_lowercase()).collect();
                uniq.dedup();
                bad(&format!("one of {}", uniq.join(", ")))
            }
        }
    }
}

/// A URL as it may be shown: a password in it (`http://user:pass@host`)
/// replaced by `******`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:******@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Parses a memory size the way Flink does: a number with an optional unit
/// (`b`, `kb`, `mb`, `gb`, `tb`, also `k`, `m`, `g`, `t`); no unit means bytes.
pub fn parse_memory_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a memory size"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return Err(format!("'{text}' has an unknown unit")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a duration the way Flink does: a number with an optional unit
/// (`ms`, `s`, `min`, `h`, `d` and their long forms); no unit means milliseconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration"))?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        "d" | "day" | "days" => n * 86_400_000,
        other => return Err(format!("unknown time unit '{other}' in '{text}'")),
    };
    Ok(Duration::from_millis(ms))
}
