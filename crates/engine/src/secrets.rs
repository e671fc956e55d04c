//! Secrets at rest: envelope encryption.
//!
//! Each stack has its own random 256-bit data key; values marked secret are encrypted with
//! it (AES-256-GCM, random 96-bit nonce, the stack name as associated data so a ciphertext
//! cannot be moved to another stack). The data key is stored only wrapped by a master key.
//! Master keys live in a key ring file (`keyring.rs`) created with mode 0600; the single
//! key file of earlier versions ([`LocalKeyFile`]) is still read.

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
    #[error(
        "a data key is wrapped by master key `{id}`, which the key ring {ring} does not hold: \
         add key `{id}`'s line to that file (copy it from the ring where `paddock key add` or \
         `paddock key rotate` made it; Paddock re-reads the ring when it meets a key it does \
         not hold) — see docs/operations.md, Key rotation"
    )]
    UnknownKey { id: String, ring: PathBuf },
    #[error(
        "master key `{id}` of the key ring {ring} does not open a data key it is said to \
         wrap: the ring holds another key under that id (a wrong or regenerated key file?)"
    )]
    WrongKey { id: String, ring: PathBuf },
    #[error("key ring {path}, line {line}: {message}")]
    KeyRingMalformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("the primary master key could not be read from the database: {0}")]
    Primary(String),
}

/// Wraps and unwraps per-stack data keys. Implementations: a local key file; a key ring
/// whose primary the database names (`paddock-store`'s `DbKeyRing`, the default); later
/// a cloud key vault.
#[async_trait::async_trait]
pub trait MasterKey: Send + Sync {
    /// Wraps a new data key under the key that wraps new data keys now.
    async fn wrap(&self, data_key: &DataKey) -> Result<String, SecretsError>;
    fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError>;
}

/// A 256-bit AES key.
#[derive(Clone)]
pub struct DataKey(pub(crate) [u8; 32]);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DataKey(k)
    }

    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
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

    pub(crate) fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
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

/// Associated data of a data key wrapped by a single key file (no key id).
pub(crate) const WRAP_AAD: &[u8] = b"paddock/data-key/v1";

impl LocalKeyFile {
    /// Opens the key file, creating it (mode 0600, parent directories too) if missing.
    pub fn open_or_create(path: &Path) -> Result<LocalKeyFile, SecretsError> {
        let fresh = DataKey::generate();
        if create_private_once(path, B64.encode(fresh.0).as_bytes())? {
            return Ok(LocalKeyFile { key: fresh });
        }
        let text = read_private(path)?;
        let key = parse_key(text.trim()).ok_or_else(|| SecretsError::KeyFileMalformed {
            path: path.to_owned(),
        })?;
        Ok(LocalKeyFile { key })
    }
}

/// 32 bytes of base64, as a key.
pub(crate) fn parse_key(text: &str) -> Option<DataKey> {
    let raw = B64.decode(text).ok().filter(|r| r.len() == 32)?;
    let mut k = [0u8; 32];
    k.copy_from_slice(&raw);
    Some(DataKey(k))
}

pub(crate) fn encode_key(key: &DataKey) -> String {
    B64.encode(key.0)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SecretsError + '_ {
    move |source| SecretsError::KeyFileIo {
        path: path.to_owned(),
        source,
    }
}

/// Creates `path` (mode 0600, parent directories too) holding `contents`, unless it
/// exists; true when this call made it.
pub(crate) fn create_private_once(path: &Path, contents: &[u8]) -> Result<bool, SecretsError> {
    let io = io_error(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(&io)?;
    }
    if path.exists() {
        return Ok(false);
    }
    // Written whole to a private temp file, then linked into place: a crash leaves no key
    // file or a complete one, and of two racing creators one key wins.
    let tmp = write_private_temp(path, contents)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}

/// Replaces `path` whole with `contents` (a private temp file renamed over it): a crash
/// leaves the old file or the new one.
pub(crate) fn replace_private(path: &Path, contents: &[u8]) -> Result<(), SecretsError> {
    let tmp = write_private_temp(path, contents)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path)(e)
    })
}

fn write_private_temp(path: &Path, contents: &[u8]) -> Result<PathBuf, SecretsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = io_error(path);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(&io)?;
    f.write_all(contents).map_err(&io)?;
    f.sync_all().map_err(&io)?;
    Ok(tmp)
}

/// The text of a key file, refused if group or other may access it.
pub(crate) fn read_private(path: &Path) -> Result<String, SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let io = io_error(path);
    let mode = std::fs::metadata(path).map_err(&io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

#[async_trait::async_trait]
impl MasterKey for LocalKeyFile {
    async fn wrap(&self, data_key: &DataKey) -> Result<String, SecretsError> {
        Ok(self.key.seal(&data_key.0, WRAP_AAD))
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

    /// The value for storage: every secret becomes `{"$secret": "<base64
    /// nonce+ciphertext>"}`.
    pub fn seal_value(&self, v: &Value) -> Sealed {
        Sealed(self.seal(v))
    }

    fn seal(&self, v: &Value) -> Value {
        match v {
            Value::Secret(inner) => {
                let plain = inner.reveal().to_json().to_string();
                let sealed = self.key.seal(plain.as_bytes(), self.stack.as_bytes());
                Value::Map(Props::from([(
                    SEALED_KEY.to_owned(),
                    Value::String(sealed),
                )]))
            }
            Value::List(items) => Value::List(items.iter().map(|i| self.seal(i)).collect()),
            Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), self.seal(v))).collect()),
            other => other.clone(),
        }
    }

    pub fn seal_props(&self, props: &Props) -> Sealed {
        Sealed(Value::Map(
            props
                .iter()
                .map(|(k, v)| (k.clone(), self.seal(v)))
                .collect(),
        ))
    }

    /// A stored value with its sealed parts decrypted and marked secret.
    pub fn open_value(&self, sealed: Sealed) -> Result<Value, SecretsError> {
        self.open(sealed.0)
    }

    fn open(&self, v: Value) -> Result<Value, SecretsError> {
        let malformed = || SecretsError::Malformed {
            stack: self.stack.clone(),
        };
        Ok(match v {
            Value::Map(m) if m.len() == 1 && m.contains_key(SEALED_KEY) => {
                let sealed = m[SEALED_KEY].as_str().ok_or_else(malformed)?;
                let plain = self
                    .key
                    .open(sealed, self.stack.as_bytes())
                    .ok_or_else(|| SecretsError::Decrypt {
                        stack: self.stack.clone(),
                    })?;
                let inner: serde_json::Value =
                    serde_json::from_slice(&plain).map_err(|_| malformed())?;
                Value::secret(Value::from_json(inner))
            }
            Value::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|i| self.open(i))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| Ok((k, self.open(v)?)))
                    .collect::<Result<_, SecretsError>>()?,
            ),
            other => other,
        })
    }

    pub fn open_props(&self, sealed: Sealed) -> Result<Props, SecretsError> {
        match self.open(sealed.0)? {
            Value::Map(m) => Ok(m),
            Value::Null => Ok(Props::new()),
            _ => Err(SecretsError::Malformed {
                stack: self.stack.clone(),
            }),
        }
    }
}

/// A value fit for storage: its secrets are sealed. Only [`StackCipher`] makes one from
/// values that hold secrets, so a store can be handed nothing else; it serializes as
/// plain JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Sealed(Value);

impl Sealed {
    /// Props that hold no secret, as they are; `None` if any part is secret.
    pub fn without_secrets(props: Props) -> Option<Sealed> {
        let v = Value::Map(props);
        (!v.contains_secret()).then_some(Sealed(v))
    }
}

impl serde::Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_plain(&self.0, s)
    }
}

fn serialize_plain<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap, SerializeSeq};
    match v {
        Value::Null => s.serialize_unit(),
        Value::Bool(b) => s.serialize_bool(*b),
        Value::Int(i) => s.serialize_i64(*i),
        Value::Float(f) => s.serialize_f64(*f),
        Value::String(text) => s.serialize_str(text),
        Value::List(items) => {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for i in items {
                seq.serialize_element(&Plain(i))?;
            }
            seq.end()
        }
        Value::Map(m) => {
            let mut map = s.serialize_map(Some(m.len()))?;
            for (k, v) in m {
                map.serialize_entry(k, &Plain(v))?;
            }
            map.end()
        }
        Value::Secret(_) => Err(S::Error::custom("refusing to store an unsealed secret")),
        Value::Unknown => Err(S::Error::custom("refusing to store an unknown value")),
    }
}

struct Plain<'a>(&'a Value);

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_plain(self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for Sealed {
    /// Straight from JSON text to values, without an intermediate JSON tree.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sealed, D::Error> {
        d.deserialize_any(PlainVisitor).map(Sealed)
    }
}

struct PlainVisitor;

impl<'de> serde::de::Visitor<'de> for PlainVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_owned()))
    }
    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Sealed(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((k, Sealed(v))) = map.next_entry::<String, Sealed>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries.into_iter().collect()))
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
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("correct horse"), "{stored}");
        let read: Sealed = serde_json::from_str(&stored).unwrap();
        assert_eq!(cipher.open_value(read).unwrap(), v);
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

    #[tokio::test]
    async fn key_file_is_created_private_and_reopens_to_the_same_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("paddock-key-{}", std::process::id()));
        let path = dir.join("master.key");
        let _ = std::fs::remove_dir_all(&dir);
        let first = LocalKeyFile::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wrapped = first.wrap(&DataKey::generate()).await.unwrap();
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
