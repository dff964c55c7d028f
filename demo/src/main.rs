//! The `hybrid-demo` binary: logging, argument parsing, the library call, the exit code.

use bridge::ProgressStyle;
use clap::Parser as _;

fn main() {
    let args = hybrid_demo::DemoArgs::parse();
    let default = match args.verbose {
        0 => "warn",
        1 => "bridge=debug,hybrid_demo=debug,phone_sim=debug,tunnel_server=debug,hybrid_protocol=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let style = if args.quiet {
        ProgressStyle::Quiet
    } else {
        ProgressStyle::Text
    };
    if let Err(e) = cli_support::block_on(hybrid_demo::run(&args, style)) {
        let code = e.exit_code();
        eprintln!("error: {:#}", anyhow::Error::from(e));
        std::process::exit(code);
    }
}
