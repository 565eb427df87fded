use clap::Parser;

use growthgraph::commands;
use growthgraph::config::Cli;

/// mimalloc instead of the system allocator: a request allocates thousands of small
/// objects across worker threads (GraphQL values, rows, JSON), where glibc's malloc
/// showed up at 5-8% of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands back to the system the pages start-up allocated and freed (generating and parsing
/// the schema's SDL for the cost model takes a few MB that do not outlive it): mimalloc
/// keeps freed pages until its next purge, which an idle server never runs.
fn release_freed_memory() {
    // SAFETY: a plain call into the allocator the binary runs on; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::run(cli, release_freed_memory)
}
