//! `phone-sim`: sets up logging, parses the command line, runs [`cli::run`]. The command line
//! lives here, on the binary's side: the `phone_sim` library is the phone and knows no CLI.

mod cli;

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error's own message already includes its cause.
            eprintln!("phone-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
