//! A ring of master keys: several keys, each with an id, kept in one private file.
//!
//! A data key wrapped by a ring key is stored as `ID:BASE64` and sealed with the id as
//! associated data, so the id it carries cannot be changed. Which key wraps *new* data
//! keys (the primary) is not the ring's business: the database names it, so that every
//! replica switches at the same moment (see `paddock-store`'s `DbKeyRing`).
//!
//! The file is text, one key a line — `ID CREATED BASE64` — so an operator can copy a
//! key's line from one ring to another. A single-key file (one line of base64, the
//! format before rings) is read as a ring holding that key under the id [`LEGACY_ID`]:
//! data keys wrapped by it carry no id and are still opened; the file is rewritten in the
//! ring format the first time a key is added or removed.
//!
//! When a data key names a key the ring does not hold, the file is read again once before
//! giving up, so a key added to the file on this host is picked up without a restart.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::secrets::{
    DataKey, SecretsError, WRAP_AAD, create_private_once, encode_key, parse_key, read_private,
    replace_private,
};
use crate::state::{format_ms, now_ms};

/// The id of the key a single-key file holds; data keys it wrapped carry no id.
pub const LEGACY_ID: &str = "k0";

const HEADER: &str = "\
# Paddock master key ring: one key a line, `ID CREATED KEY` (KEY: 32 bytes, base64).
# The database names the primary key (`paddock key list`). Keep this file mode 0600.
";

/// A ring key as shown: never its material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    /// RFC 3339, UTC.
    pub created: String,
}

#[derive(Clone)]
struct RingKey {
    info: KeyInfo,
    key: DataKey,
}

/// The master keys of one ring file.
pub struct KeyRing {
    path: PathBuf,
    keys: RwLock<Vec<RingKey>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("path", &self.path)
            .field("keys", &self.keys())
            .finish()
    }
}

/// The id of the key that wrapped `wrapped` (as stored), [`LEGACY_ID`] when it carries
/// none.
pub fn wrapped_by(wrapped: &str) -> &str {
    wrapped.split_once(':').map_or(LEGACY_ID, |(id, _)| id)
}

/// Whether `id` may name a key: lowercase letters, digits and `-`, 1 to 40 of them (so it
/// is safe in a file line, a stored prefix and a SQL `LIKE` pattern).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn aad(id: &str) -> Vec<u8> {
    format!("paddock/data-key/v2/{id}").into_bytes()
}

impl KeyRing {
    /// Opens the ring at `path`, creating it (mode 0600) with one new key if missing.
    pub fn open_or_create(path: &Path) -> Result<KeyRing, SecretsError> {
        let first = RingKey {
            info: new_info(),
            key: DataKey::generate(),
        };
        create_private_once(path, render(std::slice::from_ref(&first)).as_bytes())?;
        let ring = KeyRing {
            path: path.to_owned(),
            keys: RwLock::new(Vec::new()),
        };
        ring.reload()?;
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again.
    pub fn reload(&self) -> Result<(), SecretsError> {
        let keys = parse(&self.path, &read_private(&self.path)?)?;
        *self.keys.write().expect("key ring lock") = keys;
        Ok(())
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut infos: Vec<KeyInfo> = self
            .keys
            .read()
            .expect("key ring lock")
            .iter()
            .map(|k| k.info.clone())
            .collect();
        infos.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        infos
    }

    /// Whether the ring holds `id`, reading the file again if it did not.
    pub fn holds(&self, id: &str) -> bool {
        self.key(id).is_ok()
    }

    fn key(&self, id: &str) -> Result<DataKey, SecretsError> {
        let find = |ring: &KeyRing| {
            ring.keys
                .read()
                .expect("key ring lock")
                .iter()
                .find(|k| k.info.id == id)
                .map(|k| k.key.clone())
        };
        if let Some(k) = find(self) {
            return Ok(k);
        }
        self.reload()?;
        find(self).ok_or_else(|| SecretsError::UnknownKey {
            id: id.to_owned(),
            ring: self.path.clone(),
        })
    }

    /// Wraps a data key under the ring key `id`.
    pub fn wrap_with(&self, id: &str, data_key: &DataKey) -> Result<String, SecretsError> {
        let key = self.key(id)?;
        Ok(format!("{id}:{}", key.seal(&data_key.0, &aad(id))))
    }

    /// Opens a wrapped data key with the ring key it names.
    pub fn unwrap(&self, wrapped: &str) -> Result<DataKey, SecretsError> {
        let (id, sealed, aad) = match wrapped.split_once(':') {
            Some((id, sealed)) => (id, sealed, aad(id)),
            None => (LEGACY_ID, wrapped, WRAP_AAD.to_vec()),
        };
        let raw = self
            .key(id)?
            .open(sealed, &aad)
            .filter(|r| r.len() == 32)
            .ok_or_else(|| SecretsError::WrongKey {
                id: id.to_owned(),
                ring: self.path.clone(),
            })?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&raw);
        Ok(DataKey(k))
    }

    /// Makes a new key and writes it to the file (in the ring format).
    pub fn add(&self) -> Result<KeyInfo, SecretsError> {
        self.reload()?;
        let mut keys = self.keys.write().expect("key ring lock");
        let mut info = new_info();
        while keys.iter().any(|k| k.info.id == info.id) {
            info = new_info();
        }
        keys.push(RingKey {
            info: info.clone(),
            key: DataKey::generate(),
        });
        replace_private(&self.path, render(&keys).as_bytes())?;
        Ok(info)
    }

    /// Removes key `id` from the file; false if it held no such key.
    pub fn remove(&self, id: &str) -> Result<bool, SecretsError> {
        self.reload()?;
        let mut keys = self.keys.write().expect("key ring lock");
        let before = keys.len();
        keys.retain(|k| k.info.id != id);
        if keys.len() == before {
            return Ok(false);
        }
        replace_private(&self.path, render(&keys).as_bytes())?;
        Ok(true)
    }
}

/// A new key's id and creation time: `k-YYYYMMDD-` and six random hex digits.
fn new_info() -> KeyInfo {
    use rand::RngCore;
    let created = format_ms(now_ms());
    let date: String = created.chars().take(10).filter(|c| *c != '-').collect();
    let mut salt = [0u8; 3];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    KeyInfo {
        id: format!("k-{date}-{hex}"),
        created,
    }
}

fn render(keys: &[RingKey]) -> String {
    let mut out = HEADER.to_owned();
    for k in keys {
        out.push_str(&format!(
            "{} {} {}\n",
            k.info.id,
            k.info.created,
            encode_key(&k.key)
        ));
    }
    out
}

fn parse(path: &Path, text: &str) -> Result<Vec<RingKey>, SecretsError> {
    let malformed = |line: usize, message: &str| SecretsError::KeyRingMalformed {
        path: path.to_owned(),
        line,
        message: message.to_owned(),
    };
    let lines: Vec<(usize, Vec<&str>)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split_whitespace().collect::<Vec<_>>()))
        .filter(|(_, words)| words.first().is_some_and(|w| !w.starts_with('#')))
        .collect();
    // The format before rings: the file is one key.
    if let [(_, words)] = lines.as_slice()
        && words.len() == 1
    {
        let key = parse_key(words[0]).ok_or_else(|| SecretsError::KeyFileMalformed {
            path: path.to_owned(),
        })?;
        let created = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(|| format_ms(0), |d| format_ms(d.as_millis() as i64));
        return Ok(vec![RingKey {
            info: KeyInfo {
                id: LEGACY_ID.to_owned(),
                created,
            },
            key,
        }]);
    }
    let mut keys: Vec<RingKey> = Vec::with_capacity(lines.len());
    for (line, words) in lines {
        let [id, created, material] = words.as_slice() else {
            return Err(malformed(
                line,
                "expected `ID CREATED KEY` (KEY: 32 bytes, base64)",
            ));
        };
        if !valid_id(id) {
            return Err(malformed(
                line,
                "a key id is lowercase letters, digits and `-` (at most 40)",
            ));
        }
        if keys.iter().any(|k| k.info.id == *id) {
            return Err(malformed(line, &format!("key `{id}` appears twice")));
        }
        let key = parse_key(material)
            .ok_or_else(|| malformed(line, &format!("key `{id}` is not 32 bytes of base64")))?;
        keys.push(RingKey {
            info: KeyInfo {
                id: (*id).to_owned(),
                created: (*created).to_owned(),
            },
            key,
        });
    }
    if keys.is_empty() {
        return Err(malformed(0, "the ring holds no key"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{LocalKeyFile, MasterKey};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("paddock-ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("master.key")
    }

    #[test]
    fn a_new_ring_wraps_under_ids_that_travel_with_the_data_key() {
        let path = temp("new");
        let ring = KeyRing::open_or_create(&path).unwrap();
        let first = ring.keys()[0].id.clone();
        let dk = DataKey::generate();
        let wrapped = ring.wrap_with(&first, &dk).unwrap();
        assert_eq!(wrapped_by(&wrapped), first);
        let second = ring.add().unwrap().id;
        let rewrapped = ring.wrap_with(&second, &dk).unwrap();
        let reopened = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(reopened.unwrap(&wrapped).unwrap().0, dk.0);
        assert_eq!(reopened.unwrap(&rewrapped).unwrap().0, dk.0);
        // The id is sealed with the key: relabelled, it opens nothing.
        let relabelled = rewrapped.replacen(&second, &first, 1);
        assert!(matches!(
            reopened.unwrap(&relabelled),
            Err(SecretsError::WrongKey { .. })
        ));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_single_key_file_is_read_as_the_ring_of_its_one_key() {
        let path = temp("legacy");
        let old = LocalKeyFile::open_or_create(&path).unwrap();
        let dk = DataKey::generate();
        let wrapped = old.wrap(&dk).await.unwrap();
        let ring = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(ring.keys()[0].id, LEGACY_ID);
        assert_eq!(wrapped_by(&wrapped), LEGACY_ID);
        assert_eq!(ring.unwrap(&wrapped).unwrap().0, dk.0);
        // Adding a key rewrites the file as a ring; the old key keeps opening its data keys.
        ring.add().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("\n{LEGACY_ID} ")), "{text}");
        let reread = KeyRing::open_or_create(&path).unwrap();
        assert_eq!(reread.keys().len(), 2);
        assert_eq!(reread.unwrap(&wrapped).unwrap().0, dk.0);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_key_added_to_the_file_by_another_process_is_picked_up() {
        let path = temp("reload");
        let running = KeyRing::open_or_create(&path).unwrap();
        let other = KeyRing::open_or_create(&path).unwrap();
        let added = other.add().unwrap().id;
        let wrapped = other.wrap_with(&added, &DataKey::generate()).unwrap();
        assert!(running.unwrap(&wrapped).is_ok());
        other.remove(&added).unwrap();
        let err = KeyRing::open_or_create(&path)
            .unwrap()
            .unwrap(&wrapped)
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&added) && message.contains(&path.display().to_string()),
            "{message}"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn malformed_rings_name_their_line() {
        use std::os::unix::fs::OpenOptionsExt;
        let path = temp("malformed");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::fs::write(&path, "# ring\nk1 2026-01-01T00:00:00Z bm90IGEga2V5\n").unwrap();
        let err = KeyRing::open_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("k1"), "{err}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
