//! `gatehouse backup` and `gatehouse restore`: a consistent copy of a SQLite database, taken
//! while the server runs, and putting one back. PostgreSQL has `pg_dump` and `pg_restore`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::Args;
use gatehouse_core::keys::SigningKey;
use gatehouse_store::Location;

use crate::config::{GlobalArgs, ServeArgs, Settings};
use crate::server::{MASTER_KEY_VAR, existing_master_key};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy; the file must not exist yet.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A copy `gatehouse backup` wrote.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub async fn backup(global: &GlobalArgs, args: BackupArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(global, &ServeArgs::default())?;
    let db = sqlite_file(&settings.database, "pg_dump")?;
    gatehouse_store::backup::backup(db, &args.file).await?;
    println!(
        "Backed up {} to {}. The master key is not in it: keep the master key too, apart from \
         the backups; without it a restored database cannot be read.",
        db.display(),
        args.file.display()
    );
    Ok(())
}

/// Puts a backup back, after checking that it is a Gatehouse database and that the master key
/// the server will start with opens its signing keys: a restore the server could not start on
/// is refused before the database in place is touched.
pub async fn restore(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(global, &ServeArgs::default())?;
    let db = sqlite_file(&settings.database, "pg_restore")?;
    let keys = gatehouse_store::backup::inspect(&args.file).await?;
    let Some(master_key) = existing_master_key(&settings.data_dir)? else {
        bail!(
            "there is no master key: copy the master.key of the server the backup comes from into \
             {} (or set {MASTER_KEY_VAR}); without it the backup's signing keys and sealed \
             secrets cannot be read",
            settings.data_dir.display()
        );
    };
    let sealer = master_key.sealer();
    for key in &keys {
        SigningKey::load(key, &sealer).map_err(|_| {
            anyhow!(
                "the master key does not open the backup's signing key {}: a backup is restored \
                 with the master key of the server it comes from",
                key.kid
            )
        })?;
    }
    let replaced = gatehouse_store::backup::restore(&args.file, db).await?;
    println!("Restored {} to {}.", args.file.display(), db.display());
    if let Some(replaced) = replaced {
        println!(
            "The database it replaced is kept as {}.",
            replaced.display()
        );
    }
    Ok(())
}

fn sqlite_file<'a>(database: &'a str, postgres_tool: &str) -> anyhow::Result<&'a Path> {
    match Location::parse(database)? {
        Location::Sqlite(path) => Ok(path),
        Location::Postgres(_) => {
            bail!("backup and restore copy SQLite databases; use {postgres_tool} for PostgreSQL")
        }
    }
}
