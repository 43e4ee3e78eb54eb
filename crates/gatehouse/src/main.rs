//! `gatehouse`: see `lib.rs` for the commands.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match gatehouse::main_entry().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
