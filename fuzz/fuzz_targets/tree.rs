//! Tree blobs: raw CBOR as a reader gets it after authentication.
#![no_main]

use cairn_engine::repofile::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data, "t") {
        // Accepted trees satisfy the invariants and re-encode to an
        // encoding that decodes to the same tree.
        let again = Tree::decode(&t.encode(), "t").expect("re-encoded tree decodes");
        assert_eq!(again, t);
        for w in t.nodes.windows(2) {
            assert!(w[0].name < w[1].name);
        }
        for n in &t.nodes {
            assert_eq!(t.find(&n.name), Some(n));
        }
    }
});
