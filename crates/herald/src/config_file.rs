//! The TOML layer of the configuration.

use anyhow::Context;
use herald_server::Config;
use std::path::Path;

/// Reads `path`, or `herald.toml` when no path is given and that file exists; defaults otherwise.
/// Unknown keys are an error.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let (path, required) = match path {
        Some(p) => (p, true),
        None => (Path::new("herald.toml"), false),
    };
    let mut config = Config::default();
    if !required && !path.exists() {
        return Ok(config);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    config.apply_toml(&text).with_context(|| format!("invalid configuration file {}", path.display()))?;
    Ok(config)
}
