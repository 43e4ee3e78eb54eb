//! The scale benchmark's seeder (`bench/scale`): writes many applications, users and opaque
//! tokens straight into a Gatehouse database, and can time the purge of expired rows. It uses
//! the data directory's master key (or `GATEHOUSE_MASTER_KEY`), as the server does, so the
//! server accepts the seeded secrets and tokens. Prints one JSON object.
//!
//!     cargo run --release -p gatehouse --example bench_seed -- \
//!         --data-dir DIR --database sqlite:///abs/path.db --applications 100 --tokens 1000

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_store::seed::{Plan, seed};
use gatehouse_store::{Durability, open};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Where the master key is (`master.key`), unless GATEHOUSE_MASTER_KEY holds it.
    #[arg(long)]
    data_dir: PathBuf,
    /// sqlite://ABSOLUTE_PATH or postgres://...
    #[arg(long)]
    database: String,
    /// Names the seeded rows, so several seedings fit one database.
    #[arg(long, default_value = "seed")]
    label: String,
    #[arg(long, default_value_t = 0)]
    applications: u64,
    #[arg(long, default_value_t = 0)]
    users: u64,
    /// Opaque tokens: half access tokens, half refresh tokens.
    #[arg(long, default_value_t = 0)]
    tokens: u64,
    /// The share of the tokens, in percent, that has already expired.
    #[arg(long, default_value_t = 0)]
    expired_percent: u64,
    /// After seeding, delete what has expired as the server's upkeep does, and time it.
    #[arg(long)]
    purge: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let master_key = gatehouse::server::existing_master_key(&args.data_dir)?
        .context("no master key: start the server on the data directory once first")?;
    let store = open(&args.database, Durability::Process).await?;
    let password_hash = gatehouse_core::user::hash_password(gatehouse_core::secret::generate())
        .await
        .context("hashing the seeded users' password")?;
    let now = SystemClock.now();
    let started = Instant::now();
    let seeded = seed(
        store.clone(),
        Plan {
            label: args.label,
            applications: args.applications,
            users: args.users,
            tokens: args.tokens,
            expired_percent: args.expired_percent.min(100),
            now,
        },
        master_key.secret_hasher(),
        password_hash,
    )
    .await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let mut report = json!({
        "client_id": seeded.client_id,
        "client_secret": seeded.client_secret,
        "access_token": seeded.access_token,
        "seed_seconds": seed_seconds,
    });
    if args.purge {
        let started = Instant::now();
        report["purged"] = store.purge_expired(SystemClock.now()).await?.into();
        report["purge_seconds"] = started.elapsed().as_secs_f64().into();
    }
    println!("{report}");
    Ok(())
}
