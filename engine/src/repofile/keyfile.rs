//! Key files: the master secret wrapped under a password-derived key.
//! Several key files may wrap the same secret (one per password).

use serde::{Deserialize, Serialize};

use super::{from_cbor, to_cbor};
use crate::crypto::{open_with_key, seal_with_key};
use crate::error::{Error, Result};
use crate::format::{self, FileType, Role};
use crate::id::Id;
use crate::limits;

/// Argon2id parameters and salt, stored in clear in the key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always "argon2id".
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
}

impl KdfParams {
    /// Fresh parameters with a random salt.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> KdfParams {
        let mut salt = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        KdfParams {
            algorithm: "argon2id".into(),
            memory_kib,
            iterations,
            parallelism,
            salt,
        }
    }

    /// Rejects absurd parameters before any work is done, so a hostile key
    /// file cannot make cairn allocate gigabytes or spin for hours.
    pub fn validate(&self, path: &str) -> Result<()> {
        let bad = |m: String| Err(Error::corrupt(path, m));
        if self.algorithm != "argon2id" {
            return bad(format!("unsupported KDF {:?}", self.algorithm));
        }
        if !(limits::MIN_KDF_MEMORY_KIB..=limits::MAX_KDF_MEMORY_KIB).contains(&self.memory_kib) {
            return bad(format!(
                "KDF memory {} KiB is out of range",
                self.memory_kib
            ));
        }
        if !(1..=limits::MAX_KDF_ITERATIONS).contains(&self.iterations) {
            return bad(format!("KDF iterations {} out of range", self.iterations));
        }
        if !(1..=limits::MAX_KDF_PARALLELISM).contains(&self.parallelism) {
            return bad(format!("KDF parallelism {} out of range", self.parallelism));
        }
        if !(16..=64).contains(&self.salt.len()) {
            return bad("KDF salt length out of range".into());
        }
        Ok(())
    }

    /// The 32-byte wrapping key for a password.
    pub fn derive(&self, password: &[u8], path: &str) -> Result<[u8; 32]> {
        self.validate(path)?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::corrupt(path, format!("KDF parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        a.hash_password_into(password, &self.salt, &mut out)
            .map_err(|e| Error::corrupt(path, format!("KDF: {e}")))?;
        Ok(out)
    }
}

/// The key file's clear CBOR body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: KdfParams,
    pub created: String,
    pub hostname: String,
    pub username: String,
    /// nonce || ciphertext || tag of [`WrappedSecret`].
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct WrappedSecret {
    repository: Id,
    #[serde(with = "serde_bytes")]
    master: Vec<u8>,
}

fn wrap_aad() -> Vec<u8> {
    let mut a = format::header(FileType::Key).to_vec();
    a.push(Role::KeyWrap as u8);
    a
}

impl KeyFile {
    /// Wraps `master` for `password`.
    pub fn create(
        password: &[u8],
        kdf: KdfParams,
        repo: &Id,
        master: &[u8; 32],
        hostname: String,
        username: String,
    ) -> Result<KeyFile> {
        let wk = kdf.derive(password, "new key")?;
        let inner = to_cbor(&WrappedSecret {
            repository: *repo,
            master: master.to_vec(),
        });
        Ok(KeyFile {
            kdf,
            created: chrono::Utc::now().to_rfc3339(),
            hostname,
            username,
            wrapped: seal_with_key(&wk, &wrap_aad(), &inner),
        })
    }

    /// Returns the master secret and repository ID, or `None` when the
    /// password does not open this key.
    pub fn unwrap_secret(&self, password: &[u8], path: &str) -> Result<Option<([u8; 32], Id)>> {
        let wk = self.kdf.derive(password, path)?;
        self.unwrap_with_key(&wk, path)
    }

    /// Like [`KeyFile::unwrap_secret`] with the wrapping key already
    /// derived (`KdfParams::derive`); `None` when it does not open this key.
    pub fn unwrap_with_key(&self, wk: &[u8; 32], path: &str) -> Result<Option<([u8; 32], Id)>> {
        let Some(inner) = open_with_key(wk, &wrap_aad(), &self.wrapped) else {
            return Ok(None);
        };
        let w: WrappedSecret = from_cbor(&inner, path)?;
        let master: [u8; 32] = w
            .master
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt(path, "wrapped master secret has the wrong length"))?;
        Ok(Some((master, w.repository)))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = format::header(FileType::Key).to_vec();
        out.extend_from_slice(&to_cbor(self));
        out
    }

    pub fn decode(bytes: &[u8], path: &str) -> Result<KeyFile> {
        if bytes.len() as u64 > limits::MAX_KEY_FILE {
            return Err(Error::corrupt(path, "key file is too large"));
        }
        let body = format::strip_header(bytes, FileType::Key, path)?;
        let k: KeyFile = from_cbor(body, path)?;
        k.kdf.validate(path)?;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap() {
        let repo = Id::random();
        let kdf = KdfParams::new(limits::MIN_KDF_MEMORY_KIB, 1, 1);
        let k = KeyFile::create(b"pw", kdf, &repo, &[9; 32], "h".into(), "u".into()).unwrap();
        let d = KeyFile::decode(&k.encode(), "k").unwrap();
        assert_eq!(d.unwrap_secret(b"pw", "k").unwrap(), Some(([9; 32], repo)));
        assert_eq!(d.unwrap_secret(b"px", "k").unwrap(), None);
    }

    #[test]
    fn hostile_kdf_rejected_before_work() {
        let mut kdf = KdfParams::new(limits::MIN_KDF_MEMORY_KIB, 1, 1);
        kdf.memory_kib = u32::MAX;
        assert!(kdf.derive(b"pw", "k").is_err());
        let mut kdf = KdfParams::new(limits::MIN_KDF_MEMORY_KIB, 1, 1);
        kdf.iterations = 1_000_000;
        assert!(kdf.derive(b"pw", "k").is_err());
    }
}
