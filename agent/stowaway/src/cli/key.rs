//! `stowaway key`: list, add and remove the keys (passwords) of a repository, and change
//! the password. The master key never changes, so no data is rewritten.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use stowaway_repository::{KdfParams, Repository};
use zeroize::Zeroizing;

use super::{Global, output};

/// Manage the keys (passwords) of the repository.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the keys; `*` marks the one that opened the repository.
    List,
    /// Add a key for another password.
    Add(NewKey),
    /// Remove a key (neither the one in use nor the last one).
    Remove {
        /// Key id or a unique prefix of at least 4 characters.
        id: String,
    },
    /// Change the password: add a key for the new password, then remove the one in use.
    Passwd(NewKey),
}

/// Where the new password comes from, and how it is protected.
#[derive(Debug, clap::Args)]
pub(crate) struct NewKey {
    /// Read the new password from this file (else $STOWAWAY_NEW_PASSWORD, else it is asked
    /// for on the terminal).
    #[arg(long, value_name = "FILE")]
    new_password_file: Option<PathBuf>,
    /// Argon2id memory in KiB for the new key (default 65536 = 64 MiB).
    #[arg(long, default_value_t = KdfParams::default().memory_kib, value_parser = clap::value_parser!(u32).range(8..))]
    kdf_memory_kib: u32,
    /// Argon2id passes for the new key.
    #[arg(long, default_value_t = KdfParams::default().iterations, value_parser = clap::value_parser!(u32).range(1..))]
    kdf_iterations: u32,
}

impl NewKey {
    fn kdf(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory_kib,
            iterations: self.kdf_iterations,
            ..KdfParams::default()
        }
    }

    /// The new password: file, environment, or asked twice on the terminal.
    fn password(&self) -> anyhow::Result<Zeroizing<String>> {
        if let Some(path) = &self.new_password_file {
            return super::repo::password_file(path);
        }
        if let Ok(p) = std::env::var("STOWAWAY_NEW_PASSWORD")
            && !p.is_empty()
        {
            return Ok(Zeroizing::new(p));
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no new password given: use --new-password-file FILE or set \
                 STOWAWAY_NEW_PASSWORD (or run on a terminal to be asked)"
            );
        }
        let first = prompt("new password: ")?;
        if first.is_empty() {
            bail!("the new password is empty");
        }
        let second = prompt("repeat the new password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        Ok(first)
    }
}

/// Reads one line from the terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<Zeroizing<String>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    use std::io::{BufRead, Write};

    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("opening the terminal to ask for the password")?;
    let mut out = &tty;
    write!(out, "{text}")?;
    out.flush()?;
    let saved = tcgetattr(&tty).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&tty, OptionalActions::Now, &quiet).context("turning off the echo")?;
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let restored = tcsetattr(&tty, OptionalActions::Now, &saved);
    writeln!(out)?;
    read.context("reading the password")?;
    restored.context("restoring the terminal settings")?;
    let password = line.trim_end_matches(['\n', '\r']);
    Ok(Zeroizing::new(password.to_owned()))
}

pub(crate) async fn run(g: &Global, command: Command) -> anyhow::Result<u8> {
    let repo = super::repo::open(g).await?;
    match command {
        Command::List => list(g, &repo).await,
        Command::Add(new) => {
            let password = new.password()?;
            let lock = repo.lock(false, "key add").await?;
            let id = repo.add_key(&password, new.kdf()).await;
            lock.release().await?;
            let id = id?;
            if g.json {
                output::json(&serde_json::json!({ "added": id.to_hex() }))?;
            } else if !g.quiet {
                println!("added key {}", id.short());
            }
            Ok(0)
        }
        Command::Remove { id } => {
            let lock = repo.lock(true, "key remove").await?;
            let removed = async {
                let id = repo.find_key(&id).await?;
                repo.remove_key(&id).await?;
                Ok::<_, stowaway_repository::Error>(id)
            }
            .await;
            lock.release().await?;
            let id = removed?;
            if g.json {
                output::json(&serde_json::json!({ "removed": id.to_hex() }))?;
            } else if !g.quiet {
                println!("removed key {}", id.short());
            }
            Ok(0)
        }
        Command::Passwd(new) => {
            let old = repo.key_id();
            let password = new.password()?;
            let lock = repo.lock(true, "key passwd").await?;
            let id = repo.change_password(&password, new.kdf()).await;
            lock.release().await?;
            let id = id?;
            let old = old.map(|k| k.to_hex()).unwrap_or_default();
            if g.json {
                output::json(&serde_json::json!({ "added": id.to_hex(), "removed": old }))?;
            } else if !g.quiet {
                println!(
                    "changed the password: key {} replaces key {}",
                    id.short(),
                    &old[..old.len().min(8)]
                );
            }
            Ok(0)
        }
    }
}

async fn list(g: &Global, repo: &Repository) -> anyhow::Result<u8> {
    let keys = repo.keys().await?;
    if g.json {
        let list: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id.to_hex(),
                    "current": k.current,
                    "created": k.created,
                    "hostname": k.hostname,
                    "username": k.username,
                    "kdf": k.kdf,
                })
            })
            .collect();
        output::json(&list)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                if k.current { "*" } else { "" }.to_owned(),
                k.id.short(),
                output::time(k.created),
                k.hostname.clone(),
                k.username.clone(),
                format!(
                    "argon2id {}, {} passes",
                    output::bytes(u64::from(k.kdf.memory_kib) * 1024),
                    k.kdf.iterations
                ),
            ]
        })
        .collect();
    output::table(&[" ", "ID", "Created", "Host", "User", "KDF"], &rows)?;
    Ok(0)
}
