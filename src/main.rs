use clap::Parser;

use growthgraph::commands;
use growthgraph::config::Cli;

/// mimalloc instead of the system allocator: a request allocates thousands of small
/// objects across worker threads (GraphQL values, rows, JSON), where glibc's malloc
/// showed up at 5-8% of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::run(cli)
}
