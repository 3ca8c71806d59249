//! Key files: the clear CBOR parsed before any authentication, KDF
//! parameters validated before any Argon2 work, and the wrapped secret's
//! plaintext parsed after the harness seals arbitrary bytes.
//!
//! Run with a short `-timeout`: a key file whose accepted-but-expensive
//! KDF parameters reached Argon2 here would show up as a timeout.
#![no_main]

use cairn_engine::limits;
use cairn_engine::repofile::keyfile::KeyFile;
use cairn_fuzz::{seal_wrapped, PASSWORD, WRAP_KEY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::decode(data, "k") {
        // Decoding validated the parameters: they are within the limits.
        assert!(kf.kdf.validate("k").is_ok());
        assert!(kf.kdf.memory_kib >= limits::MIN_KDF_MEMORY_KIB);
        let _ = kf.unwrap_with_key(&WRAP_KEY, "k");
        // Real Argon2 only at the cheapest accepted cost (8 MiB, one pass,
        // one lane, about 10 ms); dearer parameters are legal but would
        // only slow the fuzzer.
        if kf.kdf.memory_kib == limits::MIN_KDF_MEMORY_KIB
            && kf.kdf.iterations == 1
            && kf.kdf.parallelism == 1
        {
            let _ = kf.unwrap_secret(PASSWORD, "k");
        }
        // Re-encoding what was decoded decodes to the same parameters.
        let again = KeyFile::decode(&kf.encode(), "k").expect("re-encoded key file decodes");
        assert_eq!(again.kdf, kf.kdf);
        assert_eq!(again.wrapped, kf.wrapped);
    }
    // The wrapped secret's plaintext, behind the MAC.
    let kf = cairn_fuzz::sample_keyfile_cached();
    let mut k = kf.clone();
    k.wrapped = seal_wrapped(data);
    if let Ok(Some((master, _repo))) = k.unwrap_with_key(&WRAP_KEY, "k") {
        assert_eq!(master.len(), 32);
    }
});
