use anyhow::Result;

use crate::args::{Global, KeyCommand};
use crate::{context, exit};

pub fn run(g: &Global, k: KeyCommand) -> Result<i32> {
    let mut session = context::session(g, context::Locking::Shared)?;
    let repo = &mut session.repo;
    match k {
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| serde_json::json!({"id": k.id.to_hex(), "current": k.current, "created": k.created, "hostname": k.hostname, "username": k.username}))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(" {:<8}  {:<12}  {:<20}  Created", "ID", "User", "Host");
                for k in keys {
                    println!(
                        "{}{:<8}  {:<12}  {:<20}  {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        KeyCommand::Add(a) => {
            let pw = context::new_password(a.new_password_file.as_deref(), g)?;
            let id = repo.add_key(&pw, a.kdf_memory.saturating_mul(1024), a.kdf_iterations)?;
            if g.json {
                println!("{}", serde_json::json!({"id": id.to_hex()}));
            } else if !g.quiet {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::Remove { id } => {
            let id = repo.find_key(&id)?;
            repo.remove_key(&id)?;
            if !g.quiet && !g.json {
                println!("removed key {}", id.short());
            }
        }
        KeyCommand::Passwd(a) => {
            let pw = context::new_password(a.new_password_file.as_deref(), g)?;
            let id =
                repo.change_password(&pw, a.kdf_memory.saturating_mul(1024), a.kdf_iterations)?;
            if g.json {
                println!("{}", serde_json::json!({"id": id.to_hex()}));
            } else if !g.quiet {
                println!("password changed; new key {}", id.short());
            }
        }
    }
    Ok(exit::OK)
}
