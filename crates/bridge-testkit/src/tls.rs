//! TLS material a test makes itself with OpenSSL's command line (as an operator would):
//! a CA, and a server certificate for `127.0.0.1` / `localhost` signed by it, its key in
//! PKCS#8. Brokers, the registry and the webhook listener serve with it; clients trust the
//! CA file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{HarnessError, Result};

/// A test CA and one server certificate it signed.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (PEM): what clients trust.
    pub ca_file: PathBuf,
    /// The server certificate (PEM).
    pub cert_file: PathBuf,
    /// The server key (PKCS#8 PEM, unencrypted).
    pub key_file: PathBuf,
    /// Key then certificate in one file (a Kafka `PEM` keystore).
    pub keystore_file: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| HarnessError::Io {
            context: "run openssl (apt-get install openssl)".into(),
            source,
        })?;
    match status.success() {
        true => Ok(()),
        false => Err(HarnessError::Broker(format!(
            "openssl {} failed",
            args.first().copied().unwrap_or_default()
        ))),
    }
}

impl TestCa {
    /// Makes a CA and a server certificate in `dir`.
    pub fn make(dir: &Path) -> Result<Self> {
        let io = |context: &str| {
            let context = context.to_owned();
            move |source| HarnessError::Io { context, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create the TLS folder"))?;
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bridge-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            dir,
        )?;
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            dir,
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .map_err(io("write the certificate extensions"))?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
            dir,
        )?;
        let key = std::fs::read_to_string(dir.join("server.key")).map_err(io("read the key"))?;
        let cert =
            std::fs::read_to_string(dir.join("server.pem")).map_err(io("read the certificate"))?;
        std::fs::write(dir.join("keystore.pem"), format!("{key}{cert}"))
            .map_err(io("write the keystore"))?;
        Ok(Self {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            keystore_file: dir.join("keystore.pem"),
        })
    }
}
