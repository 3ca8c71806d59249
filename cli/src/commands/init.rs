use anyhow::Result;

use cairn_engine::repository::InitOptions;
use cairn_engine::Repository;

use crate::args::{Global, InitArgs};
use crate::{context, exit};

pub fn run(g: &Global, a: InitArgs) -> Result<i32> {
    let backend = context::backend(g, true)?;
    let pw = context::new_password(None, g)?;
    let opts = InitOptions {
        kdf_memory_kib: a.kdf_memory.saturating_mul(1024),
        kdf_iterations: a.kdf_iterations,
        pack_size: a.pack_size.saturating_mul(1 << 20),
        compression: a.compression,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, &pw, &opts)?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"id": repo.id().to_hex(), "repository": repo.location()})
        );
    } else if !g.quiet {
        println!(
            "created repository {} at {}",
            repo.id().short(),
            repo.location()
        );
        println!("Keep the password safe: without it the data cannot be recovered.");
    }
    Ok(exit::OK)
}
