//! `gatehouse`: see `lib.rs` for the commands.

use std::process::ExitCode;

/// jemalloc rather than the C library's allocator: the token endpoint's requests each make a few
/// dozen small allocations, which cost glibc a sixth of the instructions of an opaque token
/// request; with jemalloc's per-thread caches JWT issuance takes 10 % less CPU and opaque issuance
/// 20-30 % less (bench/RESULTS.md). Allocations above 8 MiB (the Argon2 buffers) get pages of
/// their own, returned to the system as soon as they are freed.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
