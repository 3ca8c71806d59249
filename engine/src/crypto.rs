//! Keys and authenticated encryption.
//!
//! One random 32-byte master secret is the root of all key material; the
//! encryption key, the blob-ID key and the chunker seed are derived from it
//! with BLAKE3's `derive_key` under fixed context strings, so they are
//! independent and no key is ever derived from the password directly.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::ops::Range;

use crate::id::Id;

/// Context strings for BLAKE3 `derive_key` (format-spec, "Keys").
pub const CTX_ENCRYPTION: &str = "cairn 2026-11 repository v1 encryption key";
pub const CTX_BLOB_ID: &str = "cairn 2026-11 repository v1 blob id key";
pub const CTX_CHUNKER: &str = "cairn 2026-11 repository v1 chunker seed";

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted part adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The repository's key material, derived from its master secret.
pub struct MasterKey {
    secret: [u8; 32],
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
    chunker_seed: u64,
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        MasterKey::from_secret(s)
    }

    pub fn from_secret(secret: [u8; 32]) -> MasterKey {
        let enc = blake3::derive_key(CTX_ENCRYPTION, &secret);
        let id_key = blake3::derive_key(CTX_BLOB_ID, &secret);
        let seed_bytes = blake3::derive_key(CTX_CHUNKER, &secret);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&seed_bytes[..8]);
        MasterKey {
            secret,
            cipher: XChaCha20Poly1305::new(Key::from_slice(&enc)),
            id_key,
            chunker_seed: u64::from_le_bytes(seed),
        }
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// A blob's ID: keyed BLAKE3 of its plaintext, so an ID confirms
    /// content only to holders of the key.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Seed for the content-defined chunker's gear table.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// Encrypts to nonce || ciphertext || tag with a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, aad, plaintext)
    }

    /// Like `seal`, into `out` (whose contents are replaced): a backup
    /// seals every blob into the same buffer instead of taking fresh
    /// memory from the system for each.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        seal_into_with(&self.cipher, aad, plaintext, out)
    }

    /// Authenticates and decrypts nonce || ciphertext || tag; `None` when
    /// the data or its associated data were altered or the key is wrong.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.cipher, aad, sealed)
    }

    /// Like `open`, but decrypts where the bytes lie and returns the range
    /// of `sealed` that then holds the plaintext: a restore opens every
    /// blob of a pack span this way, without a copy or an allocation each.
    pub fn open_in_place(&self, aad: &[u8], sealed: &mut [u8]) -> Option<Range<usize>> {
        open_in_place_with(&self.cipher, aad, sealed)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.secret.fill(0);
        self.id_key.fill(0);
    }
}

/// Seals with an arbitrary 32-byte key (key wrapping).
pub fn seal_with_key(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with(
        &XChaCha20Poly1305::new(Key::from_slice(key)),
        aad,
        plaintext,
    )
}

/// Opens with an arbitrary 32-byte key (key unwrapping).
pub fn open_with_key(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    open_with(&XChaCha20Poly1305::new(Key::from_slice(key)), aad, sealed)
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    seal_into_with(cipher, aad, plaintext, &mut out);
    out
}

fn seal_into_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    out.clear();
    out.reserve(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    // Encryption fails only for messages longer than the cipher's limit
    // (256 GiB), far beyond every format limit; such a message is a bug.
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[NONCE_LEN..])
        .expect("message within XChaCha20-Poly1305 length limit");
    out.extend_from_slice(&tag);
}

/// Decrypts nonce || ciphertext || tag where it lies after authenticating
/// it; the plaintext is then `sealed[NONCE_LEN..sealed.len() - TAG_LEN]`.
/// The cipher checks the tag before it decrypts, so a part that fails is
/// left as it was.
fn open_in_place_with(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    sealed: &mut [u8],
) -> Option<Range<usize>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let split = rest.len() - TAG_LEN;
    let (ct, tag) = rest.split_at_mut(split);
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, ct, Tag::from_slice(tag))
        .ok()?;
    Some(NONCE_LEN..NONCE_LEN + split)
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sealing into a reused buffer replaces what it held and opens to the
    /// plaintext; each seal takes a fresh nonce.
    #[test]
    fn seal_into_reused_buffer() {
        let k = MasterKey::from_secret([7u8; 32]);
        let mut out = vec![1u8; 100_000];
        k.seal_into(b"aad", b"first", &mut out);
        assert_eq!(out.len(), 5 + OVERHEAD);
        assert_eq!(k.open(b"aad", &out).unwrap(), b"first");
        let first = out.clone();
        k.seal_into(b"aad", b"first", &mut out);
        assert_ne!(out, first);
        assert_eq!(k.open(b"aad", &out).unwrap(), b"first");
        assert!(k.open(b"other", &out).is_none());
        let big = vec![9u8; 70_000];
        k.seal_into(b"aad", &big, &mut out);
        assert_eq!(k.open(b"aad", &out).unwrap(), big);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"aad", b"hello world");
        assert_eq!(sealed.len(), 11 + OVERHEAD);
        assert_eq!(
            k.open(b"aad", &sealed).as_deref(),
            Some(&b"hello world"[..])
        );
        assert!(k.open(b"aae", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.open(b"aad", &bad).is_none(), "flip at {i} accepted");
        }
        assert!(k.open(b"aad", &sealed[..10]).is_none());
    }

    #[test]
    fn open_in_place_agrees_with_open() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"aad", b"hello world");
        let mut b = sealed.clone();
        let r = k.open_in_place(b"aad", &mut b).unwrap();
        assert_eq!(r, NONCE_LEN..NONCE_LEN + 11);
        assert_eq!(&b[r], b"hello world");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let before = bad.clone();
            assert!(
                k.open_in_place(b"aad", &mut bad).is_none(),
                "flip at {i} accepted"
            );
            assert_eq!(bad, before, "a part that fails is left as it was");
        }
        assert!(k.open_in_place(b"aae", &mut sealed.clone()).is_none());
        assert!(k
            .open_in_place(b"aad", &mut sealed[..OVERHEAD - 1].to_vec())
            .is_none());
        let empty = k.seal(b"aad", b"");
        assert_eq!(
            k.open_in_place(b"aad", &mut empty.clone()),
            Some(NONCE_LEN..NONCE_LEN)
        );
    }

    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let a = MasterKey::from_secret([7; 32]);
        let b = MasterKey::from_secret([7; 32]);
        let c = MasterKey::from_secret([8; 32]);
        assert_eq!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), c.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), Id(*blake3::hash(b"x").as_bytes()));
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        assert_ne!(a.chunker_seed(), c.chunker_seed());
    }
}
