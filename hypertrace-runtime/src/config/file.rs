//! The config file: `.yaml`/`.yml` or `.json`, keys in snake_case or lowerCamelCase.
//!
//! The parsed tree is walked against the field table ([`super::fields`]): a key that names a field is
//! parsed and set, a key that names a section is walked into, the sections of other agents are skipped
//! silently, and any other key is a [`ConfigWarning`] (config files are shared across agents).
//! A file that was named but cannot be read or parsed is an error, never silently skipped.

use super::error::{ConfigError, ConfigSource, ConfigWarning, Problem};
use super::fields::{self, Raw};
use super::Config;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Reads and parses the file, by extension.
pub(crate) fn read(path: &Path) -> Result<Value, ConfigError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let yaml = match ext.as_deref() {
        Some("yaml" | "yml") => true,
        Some("json") => false,
        _ => return Err(ConfigError::file(path, Problem::UnsupportedExtension)),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, Problem::Unreadable(e.to_string())))?;
    let parsed = if yaml {
        serde_yaml::from_str::<Value>(&text).map_err(|e| ("YAML", e.to_string()))
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| ("JSON", e.to_string()))
    };
    parsed.map_err(|(format, error)| ConfigError::file(path, Problem::Unparsable { format, error }))
}

/// Reads the file and applies it to `cfg`. Returns the paths of the fields it set.
pub(crate) fn apply(
    path: &Path,
    cfg: &mut Config,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<&'static str>, ConfigError> {
    let tree = read(path)?;
    warnings.extend(check_file_permissions(path));
    let mut walker = Walker {
        path,
        cfg,
        warnings,
        applied: Vec::new(),
    };
    match &tree {
        Value::Object(root) => walker.walk(root, "", "")?,
        // An empty file (or one holding only comments) configures nothing.
        Value::Null => {}
        other => {
            return Err(ConfigError::file(
                path,
                Problem::Value {
                    got: fields::describe(Raw::File(other)),
                    expected: "a mapping at the top level".into(),
                },
            ))
        }
    }
    Ok(walker.applied)
}

/// On unix, a config file that any user may write is reported: whoever can edit it can redirect the
/// spans (and the token) to their own collector, or switch capture on. Elsewhere: `None`.
pub fn check_file_permissions(path: &Path) -> Option<ConfigWarning> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o002 != 0 {
            return Some(ConfigWarning::WorldWritable {
                file: path.to_path_buf(),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// `dataCapture` → `data_capture`; snake_case keys are unchanged.
pub(crate) fn camel_to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, ch) in key.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

struct Walker<'a> {
    path: &'a Path,
    cfg: &'a mut Config,
    warnings: &'a mut Vec<ConfigWarning>,
    applied: Vec<&'static str>,
}

impl Walker<'_> {
    /// `norm`: the snake_case path of `map`; `written`: the same path as spelled in the file.
    fn walk(
        &mut self,
        map: &Map<String, Value>,
        norm: &str,
        written: &str,
    ) -> Result<(), ConfigError> {
        for (key, value) in map {
            let norm = join(norm, &camel_to_snake(key));
            let written = join(written, key);
            let source = || ConfigSource::File {
                path: PathBuf::from(self.path),
                key: Some(written.clone()),
            };
            if let Some(field) = fields::lookup(&norm) {
                if field.apply(self.cfg, Raw::File(value), source)? {
                    self.applied.push(field.path);
                }
            } else if fields::is_section(&norm) {
                match value {
                    Value::Object(section) => self.walk(section, &norm, &written)?,
                    Value::Null => {}
                    other => {
                        return Err(ConfigError::value(
                            source(),
                            fields::describe(Raw::File(other)),
                            "a mapping",
                        ))
                    }
                }
            } else if !fields::FOREIGN_SECTIONS.contains(&norm.as_str()) {
                self.warnings.push(ConfigWarning::UnknownKey {
                    file: self.path.to_path_buf(),
                    key: written,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{
        expected_config, load_with, nest, snake_to_camel, write_file, CASES, SVC,
    };
    use super::*;

    #[test]
    fn camel_case_keys_are_normalized() {
        let cases = [
            ("dataCapture", "data_capture"),
            ("bodyMaxSizeBytes", "body_max_size_bytes"),
            ("traceReporterType", "trace_reporter_type"),
            ("data_capture", "data_capture"),
            ("rustagent", "rustagent"),
        ];
        for (camel, snake) in cases {
            assert_eq!(camel_to_snake(camel), snake);
            assert_eq!(camel_to_snake(&snake_to_camel(snake)), snake);
        }
    }

    /// Every field of the table, set by a snake_case YAML file and by a lowerCamelCase JSON file.
    #[test]
    fn every_field_takes_effect_from_yaml_and_camel_case_json() {
        let dir = tempfile::tempdir().unwrap();
        for case in CASES {
            let value: Value = serde_json::from_str(case.file).unwrap();
            let yaml = serde_yaml::to_string(&nest(case.path, value.clone(), false)).unwrap();
            let json = serde_json::to_string_pretty(&nest(case.path, value, true)).unwrap();
            for (name, text) in [("c.yaml", yaml), ("c.json", json)] {
                let file = write_file(&dir, name, &text);
                let (cfg, warnings) = load_with(Some(&file), &[])
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.path));
                assert!(warnings.is_empty(), "{}: {warnings:?}", case.path);
                assert_eq!(
                    cfg,
                    expected_config(case),
                    "{} from {name}:\n{text}",
                    case.path
                );
                assert_ne!(cfg, Config::defaults(SVC), "{}", case.path);
            }
        }
    }

    #[test]
    fn yml_extension_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "c.YML", "enabled: false\n");
        assert!(!load_with(Some(&file), &[]).unwrap().0.enabled);
        let file = write_file(&dir, "empty.yaml", "# nothing here\n");
        assert_eq!(
            load_with(Some(&file), &[]).unwrap().0,
            Config::defaults(SVC)
        );
    }

    /// (file name, content, fragments the error must contain)
    const FILE_ERRORS: &[(&str, &str, &[&str])] = &[
        (
            "bad-bool.yaml",
            "data_capture:\n  http_body:\n    request: yes\n",
            &["bad-bool.yaml, key data_capture.http_body.request: got \"yes\", expected true or false"],
        ),
        ("bad-bool.json", r#"{"dataCapture": {"httpBody": {"request": 1}}}"#, &["key dataCapture.httpBody.request: got 1", "true or false"]),
        ("bad-int.yaml", "data_capture:\n  body_max_size_bytes: 12kb\n", &["key data_capture.body_max_size_bytes: got \"12kb\"", "whole number"]),
        ("zero.yaml", "rustagent:\n  max_queue_size: 0\n", &["key rustagent.max_queue_size: got 0", "from 1"]),
        (
            "bad-enum.yaml",
            "reporting:\n  trace_reporter_type: JAEGER\n",
            &["key reporting.trace_reporter_type: got \"JAEGER\", expected one of OTLP, OTLP_HTTP, ZIPKIN, LOGGING, NONE"],
        ),
        ("bad-format.yaml", "propagation_formats: [B3, W3C]\n", &["key propagation_formats: got \"W3C\", expected one of TRACECONTEXT, B3"]),
        ("bad-section.yaml", "reporting: http://x\n", &["key reporting: got \"http://x\", expected a mapping"]),
        ("bad-root.yaml", "- a\n- b\n", &["got a list, expected a mapping at the top level"]),
        ("malformed.yaml", "reporting:\n  endpoint: [unclosed\n", &["malformed.yaml: cannot parse it as YAML"]),
        ("malformed.json", "{\"enabled\": }", &["malformed.json: cannot parse it as JSON"]),
        ("config.toml", "enabled = false\n", &["config.toml: unsupported file extension, expected .yaml, .yml or .json"]),
    ];

    #[test]
    fn file_errors_name_the_file_key_value_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content, wanted) in FILE_ERRORS {
            let file = write_file(&dir, name, content);
            let err = load_with(Some(&file), &[]).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("invalid configuration: config file "),
                "{msg}"
            );
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            for w in *wanted {
                assert!(msg.contains(w), "{name}: {msg:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn a_named_file_that_cannot_be_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        let err = load_with(Some(&missing), &[]).unwrap_err();
        assert!(matches!(err.problem, Problem::Unreadable(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&missing.display().to_string()) && msg.contains("cannot read it"),
            "{msg}"
        );
        // A directory is not a readable file either.
        let as_dir = dir.path().join("d.yaml");
        std::fs::create_dir(&as_dir).unwrap();
        assert!(matches!(
            load_with(Some(&as_dir), &[]).unwrap_err().problem,
            Problem::Unreadable(_)
        ));
    }

    #[test]
    fn token_never_appears_in_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let contents = [
            "reporting:\n  token: {value: s3cr3t-token}\n",
            "reporting:\n  token: [s3cr3t-token]\n",
        ];
        for content in contents {
            let file = write_file(&dir, "t.yaml", content);
            let err = load_with(Some(&file), &[]).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains("s3cr3t"), "{shown}");
                assert!(
                    shown.contains("[REDACTED]") && shown.contains("reporting.token"),
                    "{shown}"
                );
            }
        }
    }

    #[test]
    fn unknown_keys_warn_with_the_full_key_and_other_agents_are_silent() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "\
service_name: s
colour: blue
reporting:
  endpoint: http://c:4317
  opa:
    enabled: true
dataCapture:
  httpHeaders:
    requestt: false
goagent:
  use_custom_bsp: true
javaagent: {filter_jar_paths: [a.jar]}
pythonagent: {}
nodeagent: ~
";
        let file = write_file(&dir, "w.yaml", yaml);
        let (cfg, warnings) = load_with(Some(&file), &[]).unwrap();
        assert_eq!(cfg.service_name, "s");
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        let path = file.display();
        assert_eq!(
            shown,
            [
                format!("unknown configuration key colour in {path} (ignored)"),
                format!("unknown configuration key dataCapture.httpHeaders.requestt in {path} (ignored)"),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn world_writable_file_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "p.yaml", "enabled: true\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check_file_permissions(&file), None);
        assert!(load_with(Some(&file), &[]).unwrap().1.is_empty());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            check_file_permissions(&file),
            Some(ConfigWarning::WorldWritable { file: file.clone() })
        );
        let warnings = load_with(Some(&file), &[]).unwrap().1;
        assert_eq!(warnings, [ConfigWarning::WorldWritable { file }]);
    }
}
