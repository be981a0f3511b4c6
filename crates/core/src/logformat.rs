//! How a program writes its log lines: [`LogFormat`].

use std::fmt;
use std::str::FromStr;

/// How log lines are written to stderr: `--log-format`, or `log_format`
/// in a config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum LogFormat {
    /// One line per event for a person to read, coloured only on a
    /// terminal (a file or the journal gets no escape codes).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`,
    /// `message`, the event's fields and those of its spans (`camera`,
    /// `peer`, `request` …), for a log collector.
    Json,
}

impl LogFormat {
    /// The name flags and config files use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}; use text or json")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.as_str().parse::<LogFormat>(), Ok(f));
        }
        let e = "JSON ".parse::<LogFormat>().unwrap_err();
        assert!(e.contains("use text or json"), "{e}");
    }
}
