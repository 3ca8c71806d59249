//! Config files: whole stored files with the fixed key, and arbitrary CBOR
//! sealed as a config body (reaching validation).
#![no_main]

use cairn_engine::repofile::config::Config;
use cairn_fuzz::{key, seal_cbor_as_config, REPO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = key();
    let _ = Config::peek_id(data, "config");
    let _ = Config::decode(data, k, "config");
    let f = seal_cbor_as_config(data);
    if let Ok(c) = Config::decode(&f, k, "config") {
        assert_eq!(c.id, REPO);
        assert!(c.validate("config").is_ok());
        let p = c.chunker;
        assert!(p.min_size <= p.avg_size && p.avg_size <= p.max_size);
        // A valid config round-trips through the real encoder.
        assert_eq!(
            Config::decode(&c.encode(k), k, "config").expect("round trip"),
            c
        );
    }
});
