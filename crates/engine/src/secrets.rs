//! Secrets at rest: envelope encryption.
//!
//! Each stack has its own random 256-bit data key; values marked secret are encrypted with
//! it (AES-256-GCM, random 96-bit nonce, the stack name as associated data so a ciphertext
//! cannot be moved to another stack). The data key is stored only wrapped by a master key.
//! The default master key lives in a local key file created with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

use crate::value::{Props, Value};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("master key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} is accessible by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("master key file {path} is malformed: expected 32 bytes of base64")]
    KeyFileMalformed { path: PathBuf },
    #[error("cannot decrypt a secret of stack `{stack}`: wrong master key or tampered ciphertext")]
    Decrypt { stack: String },
    #[error("stored secret of stack `{stack}` is malformed")]
    Malformed { stack: String },
}

/// Wraps and unwraps per-stack data keys. Implementations: a local key file (default);
/// later a cloud key vault.
pub trait MasterKey: Send + Sync {
    fn wrap(&self, data_key: &DataKey) -> String;
    fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError>;
}

/// A 256-bit AES key.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DataKey(k)
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0));
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// The default master key: 32 random bytes, base64, in a file only its owner can read.
pub struct LocalKeyFile {
    key: DataKey,
}

const WRAP_AAD: &[u8] = b"paddock/data-key/v1";

impl LocalKeyFile {
    /// Opens the key file, creating it (mode 0600, parent directories too) if missing.
    pub fn open_or_create(path: &Path) -> Result<LocalKeyFile, SecretsError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| SecretsError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        if !path.exists() {
            // Written whole to a private temp file, then linked into place: a crash leaves
            // no key file or a complete one, and of two racing creators one key wins.
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            let key = DataKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(B64.encode(key.0).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(LocalKeyFile { key }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::KeyFilePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let raw = B64
            .decode(text.trim())
            .ok()
            .filter(|r| r.len() == 32)
            .ok_or_else(|| SecretsError::KeyFileMalformed {
                path: path.to_owned(),
            })?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        Ok(LocalKeyFile { key: DataKey(k) })
    }
}

impl MasterKey for LocalKeyFile {
    fn wrap(&self, data_key: &DataKey) -> String {
        self.key.seal(&data_key.0, WRAP_AAD)
    }

    fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError> {
        let raw = self
            .key
            .open(wrapped, WRAP_AAD)
            .filter(|r| r.len() == 32)
            .ok_or_else(|| SecretsError::Decrypt {
                stack: "(data key)".into(),
            })?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        Ok(DataKey(k))
    }
}

/// Key of the JSON object that stands for an encrypted value in stored state.
pub const SEALED_KEY: &str = "$secret";

/// Encrypts and decrypts the secret parts of one stack's values.
#[derive(Clone, Debug)]
pub struct StackCipher {
    key: DataKey,
    stack: String,
}

impl StackCipher {
    pub fn new(stack: &str, key: DataKey) -> StackCipher {
        StackCipher {
            key,
            stack: stack.to_owned(),
        }
    }

    /// JSON for storage: every secret becomes `{"$secret": "<base64 nonce+ciphertext>"}`.
    pub fn seal_value(&self, v: &Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            Value::Secret(inner) => {
                let plain = inner.reveal().to_json().to_string();
                let sealed = self.key.seal(plain.as_bytes(), self.stack.as_bytes());
                J::Object(
                    [(SEALED_KEY.to_owned(), J::String(sealed))]
                        .into_iter()
                        .collect(),
                )
            }
            Value::List(items) => J::Array(items.iter().map(|i| self.seal_value(i)).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.seal_value(v)))
                    .collect(),
            ),
            other => other.to_json(),
        }
    }

    pub fn seal_props(&self, props: &Props) -> serde_json::Value {
        self.seal_value(&Value::Map(props.clone()))
    }

    /// Values from storage; sealed parts decrypted and marked secret. Takes the JSON by
    /// value so that strings move instead of being copied.
    pub fn open_value(&self, json: serde_json::Value) -> Result<Value, SecretsError> {
        use serde_json::Value as J;
        let malformed = || SecretsError::Malformed {
            stack: self.stack.clone(),
        };
        Ok(match json {
            J::Object(m) if m.len() == 1 && m.contains_key(SEALED_KEY) => {
                let sealed = m[SEALED_KEY].as_str().ok_or_else(malformed)?;
                let plain = self
                    .key
                    .open(sealed, self.stack.as_bytes())
                    .ok_or_else(|| SecretsError::Decrypt {
                        stack: self.stack.clone(),
                    })?;
                let inner: J = serde_json::from_slice(&plain).map_err(|_| malformed())?;
                Value::secret(Value::from_json(inner))
            }
            J::Array(items) => Value::List(
                items
                    .into_iter()
                    .map(|i| self.open_value(i))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| Ok((k, self.open_value(v)?)))
                    .collect::<Result<_, SecretsError>>()?,
            ),
            other => Value::from_json(other),
        })
    }

    pub fn open_props(&self, json: serde_json::Value) -> Result<Props, SecretsError> {
        match self.open_value(json)? {
            Value::Map(m) => Ok(m),
            Value::Null => Ok(Props::new()),
            _ => Err(SecretsError::Malformed {
                stack: self.stack.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_and_hide_the_clear_text() {
        let cipher = StackCipher::new("dev", DataKey::generate());
        let v = Value::Map(Props::from([
            ("password".into(), Value::secret("correct horse".into())),
            ("user".into(), "admin".into()),
        ]));
        let sealed = cipher.seal_value(&v);
        assert!(!sealed.to_string().contains("correct horse"));
        assert_eq!(cipher.open_value(sealed).unwrap(), v);
    }

    #[test]
    fn a_ciphertext_cannot_move_to_another_stack() {
        let key = DataKey::generate();
        let sealed = StackCipher::new("dev", key.clone()).seal_value(&Value::secret("x".into()));
        let err = StackCipher::new("prod", key)
            .open_value(sealed)
            .unwrap_err();
        assert!(matches!(err, SecretsError::Decrypt { .. }));
    }

    #[test]
    fn key_file_is_created_private_and_reopens_to_the_same_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("paddock-key-{}", std::process::id()));
        let path = dir.join("master.key");
        let _ = std::fs::remove_dir_all(&dir);
        let first = LocalKeyFile::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wrapped = first.wrap(&DataKey::generate());
        let second = LocalKeyFile::open_or_create(&path).unwrap();
        assert!(second.unwrap(&wrapped).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyFile::open_or_create(&path),
            Err(SecretsError::KeyFilePermissions { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
