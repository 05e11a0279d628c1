//! What can go wrong while loading the configuration, and what is only worth a warning.
//!
//! Every message is one line that names the source (file path and key, or variable name), the bad value
//! and what was expected. Secret values (`reporting.token`, export header values) are
//! replaced by [`REDACTED`] before they are stored here, so neither `Display` nor `Debug` can leak them.

use std::fmt;
use std::path::PathBuf;

/// Shown instead of a secret value.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// The config file; `key` is the dotted key as written in the file (`None`: the file as a whole).
    File {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: Option<String>,
    },
    /// An environment variable (`HT_*` or `OTEL_*`).
    Env {
        /// The variable's name.
        var: String,
    },
    /// Code: a macro option or a [`ConfigBuilder`](super::ConfigBuilder) edit; `key` is the field path.
    Code {
        /// The field path.
        key: String,
    },
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File {
                path,
                key: Some(key),
            } => write!(f, "config file {}, key {key}", path.display()),
            ConfigSource::File { path, key: None } => write!(f, "config file {}", path.display()),
            ConfigSource::Env { var } => write!(f, "environment variable {var}"),
            ConfigSource::Code { key } => {
                write!(f, "code (macro option or ConfigBuilder), field {key}")
            }
        }
    }
}

/// What is wrong with the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A value of the wrong type or out of range. `got` is already quoted/redacted for display.
    Value {
        /// The value as seen.
        got: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The named file could not be read (the OS error).
    Unreadable(String),
    /// The file could not be parsed (the parser's error; `format` is `YAML` or `JSON`).
    Unparsable {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        error: String,
    },
    /// The file's extension is not `.yaml`, `.yml` or `.json`.
    UnsupportedExtension,
}

/// An invalid configuration: the agent must not start (exit status 78, `EX_CONFIG`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad value came from.
    pub source: ConfigSource,
    /// What is wrong with it.
    pub problem: Problem,
}

impl ConfigError {
    pub(crate) fn value(
        source: ConfigSource,
        got: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError {
            source,
            problem: Problem::Value {
                got: got.into(),
                expected: expected.into(),
            },
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, problem: Problem) -> Self {
        ConfigError {
            source: ConfigSource::File {
                path: path.into(),
                key: None,
            },
            problem,
        }
    }
}

/// Keeps a message on one line whatever a parser or the OS put in it.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.source)?;
        match &self.problem {
            Problem::Value { got, expected } => write!(
                f,
                ": got {}, expected {}",
                one_line(got),
                one_line(expected)
            ),
            Problem::Unreadable(e) => write!(f, ": cannot read it: {}", one_line(e)),
            Problem::Unparsable { format, error } => {
                write!(f, ": cannot parse it as {format}: {}", one_line(error))
            }
            Problem::UnsupportedExtension => {
                f.write_str(": unsupported file extension, expected .yaml, .yml or .json")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Something worth telling the user that does not stop the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A key of the config file that no field matches (config files are shared across agents).
    UnknownKey {
        /// The file.
        file: PathBuf,
        /// The key as written.
        key: String,
    },
    /// An `HT_*` variable that no field matches.
    UnknownEnvVar {
        /// The variable's name.
        var: String,
    },
    /// The config file can be written by any user, who could then change where spans are sent.
    WorldWritable {
        /// The file.
        file: PathBuf,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownKey { file, key } => {
                write!(f, "unknown configuration key {key} in {} (ignored)", file.display())
            }
            ConfigWarning::UnknownEnvVar { var } => write!(f, "unknown environment variable {var} (ignored)"),
            ConfigWarning::WorldWritable { file } => write!(
                f,
                "config file {} is world-writable: any user could alter the agent's configuration (fix with chmod o-w)",
                file.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_and_names_source_value_and_expectation() {
        let cases = [
            (
                ConfigError::value(
                    ConfigSource::File { path: "/etc/app.yaml".into(), key: Some("data_capture.http_body.request".into()) },
                    "\"yes\"",
                    "true or false",
                ),
                "invalid configuration: config file /etc/app.yaml, key data_capture.http_body.request: got \"yes\", expected true or false",
            ),
            (
                ConfigError::value(ConfigSource::Env { var: "HT_ENABLED".into() }, "\"nope\"", "true or false"),
                "invalid configuration: environment variable HT_ENABLED: got \"nope\", expected true or false",
            ),
            (
                ConfigError::file("/x.yaml", Problem::Unparsable { format: "YAML", error: "bad\nthing".into() }),
                "invalid configuration: config file /x.yaml: cannot parse it as YAML: bad thing",
            ),
            (
                ConfigError::file("/x.toml", Problem::UnsupportedExtension),
                "invalid configuration: config file /x.toml: unsupported file extension, expected .yaml, .yml or .json",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn warning_display() {
        let w = ConfigWarning::UnknownKey {
            file: "/path/x.yaml".into(),
            key: "foo.bar".into(),
        };
        assert_eq!(
            w.to_string(),
            "unknown configuration key foo.bar in /path/x.yaml (ignored)"
        );
        let w = ConfigWarning::UnknownEnvVar {
            var: "HT_FOO".into(),
        };
        assert_eq!(
            w.to_string(),
            "unknown environment variable HT_FOO (ignored)"
        );
        let w = ConfigWarning::WorldWritable {
            file: "/x.yaml".into(),
        };
        assert!(w.to_string().contains("world-writable"), "{w}");
    }
}
