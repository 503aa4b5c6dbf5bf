//! Secrets in configuration: a [`Secret`] never prints its value (`Debug` and `Display`
//! show `**REDACTED**`), and every secret key has a `*_file` twin so a Kubernetes Secret
//! mounted as a file can supply it ([`resolve`]).

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// What a secret prints as.
pub const REDACTED: &str = "**REDACTED**";

/// A secret value. Read it with [`Secret::expose`], only where it is used.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (not set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The secret `key` from its value or from the file `key_file` names (one trailing newline
/// trimmed, as `kubectl create secret --from-file` and editors leave one). Both set is
/// refused; so is an empty file. Errors name the key, never the value.
pub fn resolve(
    key: &str,
    value: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { message };
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "{key} and {key}_file are both set: use one"
        ))),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("{key}_file `{}`: {e}", path.display())))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.is_empty() {
                return Err(invalid(format!("{key}_file `{}` is empty", path.display())));
            }
            Ok(Some(Secret::new(text)))
        }
        (None, None) => Ok(None),
    }
}

/// The secret `<section>.<key>` of a settings section from its value or its `_file` twin,
/// empty when neither is set (the section's validation decides whether that is allowed).
pub fn of_section(
    section: &str,
    key: &str,
    value: &Secret,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    Ok(resolve(&format!("{section}.{key}"), Some(value), file)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2-value");
        let shown = format!("{secret:?} {secret} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(REDACTED));
        assert_eq!(secret.expose(), "hunter2-value");
    }

    #[test]
    fn resolve_reads_the_file_trims_one_newline_and_refuses_both() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let read = resolve("x.token", None, Some(&path))?;
        assert_eq!(read.as_ref().map(Secret::expose), Some("from-file"));
        let value = Secret::new("inline-value");
        let both = resolve("x.token", Some(&value), Some(&path));
        let text = both.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("x.token_file") && !text.contains("inline-value"),
            "{text}"
        );
        assert_eq!(resolve("x.token", None, None)?, None);
        std::fs::write(&path, "\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        assert!(resolve("x.token", None, Some(&path)).is_err());
        Ok(())
    }
}
