//! The retention flags, for a program's clap parser (feature `cli`).

use super::{CameraRetention, RetentionPolicy, parse_bytes};
use crate::StoreError;

/// What the store keeps, as command-line flags (`--max-age-days`,
/// `--max-bytes`, `--min-free`, `--min-free-percent`), every camera alike:
/// `#[command(flatten)]` it into a program's parser and call
/// [`RetentionFlags::policy`].
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RetentionFlags {
    /// Delete recordings older than this many days.
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<u32>,

    /// Keep each camera's recordings under this size (e.g. 200GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub max_bytes: Option<u64>,

    /// Keep at least this much free on the disk (e.g. 5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub min_free: Option<u64>,

    /// Keep at least this share of the disk free, in percent.
    #[arg(long, value_name = "PERCENT")]
    pub min_free_percent: Option<f64>,
}

impl RetentionFlags {
    /// The policy the flags ask for, the rest as
    /// [`RetentionPolicy::default`]. A percent outside 0 to 100 is
    /// [`StoreError::InvalidInput`].
    pub fn policy(&self) -> Result<RetentionPolicy, StoreError> {
        if let Some(p) = self.min_free_percent
            && !(0.0..=100.0).contains(&p)
        {
            return Err(StoreError::InvalidInput(
                "--min-free-percent must be 0 to 100".into(),
            ));
        }
        let defaults = RetentionPolicy::default();
        Ok(RetentionPolicy {
            default: CameraRetention {
                max_age_ns: self
                    .max_age_days
                    .map(|d| i64::from(d) * 86_400 * 1_000_000_000),
                max_bytes: self.max_bytes,
            },
            min_free_bytes: self.min_free.unwrap_or(defaults.min_free_bytes),
            min_free_percent: self.min_free_percent.unwrap_or(defaults.min_free_percent),
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        retention: RetentionFlags,
    }

    fn policy(args: &[&str]) -> Result<RetentionPolicy, String> {
        let cli = Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.retention.policy().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_set_every_camera_and_the_disk_floor() {
        assert_eq!(policy(&[]).unwrap(), RetentionPolicy::default());
        let p = policy(&[
            "--max-age-days",
            "2",
            "--max-bytes",
            "1GiB",
            "--min-free",
            "5GB",
            "--min-free-percent",
            "7.5",
        ])
        .unwrap();
        assert_eq!(p.default.max_age_ns, Some(2 * 86_400 * 1_000_000_000));
        assert_eq!(p.default.max_bytes, Some(1 << 30));
        assert!(p.cameras.is_empty());
        assert_eq!((p.min_free_bytes, p.min_free_percent), (5_000_000_000, 7.5));
    }

    #[test]
    fn bad_values_are_refused_with_the_flag() {
        let err = policy(&["--min-free-percent", "101"]).unwrap_err();
        assert_eq!(err, "--min-free-percent must be 0 to 100");
        let err = policy(&["--max-bytes", "12 parsecs"]).unwrap_err();
        assert!(
            err.contains("--max-bytes") && err.contains("unknown unit"),
            "{err}"
        );
    }
}
