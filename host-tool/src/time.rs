//! The single time stamp an image carries.

use anyhow::{bail, Context, Result};

/// `KBUILD_BUILD_TIMESTAMP` (what upstream hands to `tar --mtime`; any date
/// `date -d` understands), else `SOURCE_DATE_EPOCH` (seconds), else 0.
pub fn image_time_from_env() -> Result<u32> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(ts) = get("KBUILD_BUILD_TIMESTAMP") {
        return parse_date(&ts).context("KBUILD_BUILD_TIMESTAMP");
    }
    if let Some(epoch) = get("SOURCE_DATE_EPOCH") {
        return parse_seconds(&epoch).context("SOURCE_DATE_EPOCH");
    }
    Ok(0)
}

pub fn parse_seconds(s: &str) -> Result<u32> {
    let s = s.trim();
    let n: i64 = s
        .strip_prefix('@')
        .unwrap_or(s)
        .parse()
        .with_context(|| format!("{s:?} is not a number of seconds"))?;
    u32::try_from(n).with_context(|| format!("{n} is outside squashfs's time range (0..2^32)"))
}

/// Seconds since the epoch for a date string, via `date -d` as the kernel
/// build does.
pub fn parse_date(s: &str) -> Result<u32> {
    if let Ok(n) = parse_seconds(s) {
        return Ok(n);
    }
    let out = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s"])
        .output()
        .context("running date(1) to parse the time")?;
    if !out.status.success() {
        bail!("{s:?} is not a date `date -d` understands");
    }
    parse_seconds(String::from_utf8_lossy(&out.stdout).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates() {
        assert_eq!(parse_seconds("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_seconds("@5").unwrap(), 5);
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("99999999999").is_err());
        assert_eq!(parse_date("Thu Jan  1 00:00:10 UTC 1970").unwrap(), 10);
        assert_eq!(parse_date("2024-01-01 00:00:00 UTC").unwrap(), 1_704_067_200);
        assert!(parse_date("not a date at all").is_err());
    }
}
