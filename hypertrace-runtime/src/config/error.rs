//! STUB (config helper replaces this file).
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub message: String,
}
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigWarning {
    pub message: String,
}
impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
