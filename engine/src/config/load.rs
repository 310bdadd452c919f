//! Loading and validation (placeholder: being written).
use super::Config;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: std::path::PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.into(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }])
    })?;
    load_str(&text, path)
}

pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    toml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.into(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }])
    })
}
