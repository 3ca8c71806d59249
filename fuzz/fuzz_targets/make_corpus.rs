//! Not a fuzz target: writes the seed corpora, made with the real encoders,
//! into `$CAIRN_FUZZ_CORPUS/<target>/` (default `fuzz/corpus`) and exits.
//! Built with the targets so that no second build is needed; run by
//! `fuzz/make_corpus.sh`.
#![no_main]
// `init` exits the process, so the (empty) fuzz body is never reached.
#![allow(unreachable_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let dir = std::env::var_os("CAIRN_FUZZ_CORPUS").unwrap_or_else(|| "fuzz/corpus".into());
        let dir = std::path::PathBuf::from(dir);
        if let Err(e) = cairn_fuzz::write_corpus(&dir) {
            eprintln!("make_corpus: {}: {e}", dir.display());
            std::process::exit(1);
        }
        eprintln!("make_corpus: wrote seeds under {}", dir.display());
        std::process::exit(0);
    },
    |_data: &[u8]| {}
);
