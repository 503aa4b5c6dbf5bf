//! `[registry]`: where the schema registry is and how to reach it — basic
//! authentication with the password from a file, a private CA, and automatic schema
//! registration off for production.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, check_url};

/// Where the schema registry is and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible registry; https unless on loopback or
    /// `allow_http`.
    pub url: String,
    /// Basic authentication user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// Basic authentication password (Confluent Cloud: the API secret); or `password_file`.
    pub password: Option<super::secret::Secret>,
    /// A file holding `password` (a mounted Kubernetes Secret).
    pub password_file: Option<PathBuf>,
    /// PEM file of a CA to trust for the registry's certificate, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// Register a schema on first use. Production: `false`, schemas are registered by a
    /// release step (`bridgectl schemas release`) with its own credential, and services
    /// only look ids up.
    pub auto_register_schemas: bool,
    /// Accept a plain-http URL off loopback (a private network you trust).
    pub allow_http: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: default_registry_url(),
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            auto_register_schemas: true,
            allow_http: false,
        }
    }
}

impl RegistryConfig {
    /// Refuses http off loopback (unless allowed), a password without a user, and files
    /// that cannot be read.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("registry.url", &self.url, self.allow_http)?;
        self.access().map(|_| ())
    }

    /// How the codec reaches the registry: credentials and CA read from their files.
    pub fn access(&self) -> Result<bridge_events::RegistryAccess, ConfigError> {
        let password = super::secret::resolve(
            "registry.password",
            self.password.as_ref(),
            self.password_file.as_deref(),
        )?;
        let basic = match (&self.username, password) {
            (Some(user), password) => Some((
                user.clone(),
                password.map(|p| p.expose().to_owned()).unwrap_or_default(),
            )),
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    message: "registry.password is set without registry.username".into(),
                });
            }
            (None, None) => None,
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| ConfigError::Invalid {
                message: format!("registry.ca_file `{}`: {e}", path.display()),
            })?),
            None => None,
        };
        Ok(bridge_events::RegistryAccess {
            url: self.url.clone(),
            basic,
            ca_pem,
            auto_register: self.auto_register_schemas,
        })
    }

    /// The event codec for this registry.
    pub fn codec(&self) -> Result<bridge_events::EventCodec, ConfigError> {
        bridge_events::EventCodec::connect(&self.access()?).map_err(|e| ConfigError::Invalid {
            message: format!("registry: {e}"),
        })
    }
}

fn default_registry_url() -> String {
    "http://127.0.0.1:8081".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(toml: &str) -> Result<RegistryConfig, ConfigError> {
        let config: RegistryConfig = toml::from_str(toml).map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn http_off_loopback_is_refused_unless_allowed() -> Result<(), ConfigError> {
        let refused = registry("url = \"http://registry.internal:8081\"").err();
        assert!(refused.is_some_and(|e| e.to_string().contains("must be an https URL")));
        registry("url = \"http://registry.internal:8081\"\nallow_http = true")?;
        registry("url = \"https://registry.internal:8081\"")?;
        registry("url = \"http://127.0.0.1:8081\"")?;
        Ok(())
    }

    #[test]
    fn the_password_comes_from_a_file_and_is_never_printed() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let file = dir.path().join("password");
        std::fs::write(&file, "registry-pass-from-file\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let config = registry(&format!(
            "url = \"https://sr:8081\"\nusername = \"bridge\"\npassword_file = {:?}",
            file.display().to_string()
        ))?;
        let access = config.access()?;
        assert_eq!(
            access.basic,
            Some(("bridge".into(), "registry-pass-from-file".into()))
        );
        let inline = registry(
            "url = \"https://sr:8081\"\nusername = \"bridge\"\npassword = \"inline-registry-pass\"",
        )?;
        for shown in [format!("{inline:?}"), format!("{:?}", inline.access()?)] {
            assert!(!shown.contains("inline-registry-pass"), "{shown}");
        }
        let orphan = registry("url = \"https://sr:8081\"\npassword = \"p\"").err();
        assert!(orphan.is_some_and(|e| e.to_string().contains("without registry.username")));
        Ok(())
    }
}
