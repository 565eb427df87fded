use clap::Parser;

use growthgraph::commands;
use growthgraph::config::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::run(cli)
}
