//! The `tunnel-server` binary: sets up logging, parses flags, binds, runs the relay until
//! SIGTERM or ctrl-c, and maps the result to an exit code. `tunnel-server domain` prints
//! tunnel domain names.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tunnel_server::{domain, LogFormat, ServeArgs};

/// A self-hostable caBLE v2 (CTAP 2.2 hybrid) tunnel relay.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Print the resolved configuration as TOML (defaults, file, environment, flags) and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the host name of tunnel domain numbers, or search for one.
    Domain {
        /// A domain number (0, 1 or 256..=65535), or a range like 256..1000.
        #[arg(value_parser = domain::parse_range)]
        ids: Option<std::ops::RangeInclusive<u16>>,
        /// Print the number whose name is exactly this host name.
        #[arg(long, conflicts_with_all = ["ids", "contains"])]
        find: Option<String>,
        /// List the numbers (in the range, default all) whose name contains this text.
        #[arg(long)]
        contains: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Domain {
            ids,
            find,
            contains,
        }) => domain_command(ids, find, contains),
        None if cli.print_config => print_config(&cli.serve),
        None => serve(&cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunnel-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn domain_command(
    ids: Option<std::ops::RangeInclusive<u16>>,
    find: Option<String>,
    contains: Option<String>,
) -> anyhow::Result<()> {
    if let Some(host) = find {
        let n = domain::find(&host)
            .with_context(|| format!("no domain number has the name {host:?}"))?;
        println!("{n} {host}");
        return Ok(());
    }
    let range = ids.clone().unwrap_or(0..=u16::MAX);
    match contains {
        Some(needle) => {
            for (n, name) in domain::search(range, &needle) {
                println!("{n} {name}");
            }
        }
        None => {
            let range =
                ids.context("give a domain number or range, --find <host> or --contains <text>")?;
            for n in range {
                println!("{}", domain::describe(n));
            }
        }
    }
    Ok(())
}

fn print_config(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    print!(
        "{}",
        toml::to_string(&config).context("cannot render the configuration")?
    );
    Ok(())
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        tunnel_server::run(listener, config, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
