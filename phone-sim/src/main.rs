//! `phone-sim`: sets up logging, parses the command line, runs [`phone_sim::cli::run`].

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = phone_sim::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match phone_sim::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error's own message already includes its cause.
            eprintln!("phone-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
