//! Shell completions and man pages, generated from the command-line definitions so they never
//! drift from them; the Debian package ships them (`packaging/debian/build`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write completion scripts for bash, zsh and fish into DIR.
    Completions {
        /// The folder to write them to (created if need be).
        dir: PathBuf,
    },
    /// Write man pages into DIR: gatehouse.1 and one for each subcommand.
    Man {
        /// The folder to write them to (created if need be).
        dir: PathBuf,
    },
}

pub fn run(command: GenerateCommand) -> anyhow::Result<()> {
    match command {
        GenerateCommand::Completions { dir } => {
            create(&dir)?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut Cli::command(), "gatehouse", &dir)
                    .with_context(|| format!("cannot write the {shell} completions"))?;
            }
        }
        GenerateCommand::Man { dir } => {
            create(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir).context("cannot write the man pages")?;
        }
    }
    Ok(())
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
