//! The `tunnel-server` binary: sets up logging, parses flags, binds, runs the relay until
//! SIGTERM or ctrl-c, and maps the result to an exit code. `tunnel-server domain` prints
//! tunnel domain names; `tunnel-server health` checks a running relay (exit 0 or 1);
//! `tunnel-server fleet` renders a fleet's router configuration and per-pod Services;
//! `tunnel-server man` prints the manual page; `--check` checks a configuration and
//! `--print-config` prints it.

mod health;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
use cli_support::parse_duration;
use tunnel_server::fleet::{self, Fleet};
use tunnel_server::{domain, LogFormat, ServeArgs};

/// jemalloc, so memory comes back after tunnels close: see the `jemalloc` feature in Cargo.toml.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A self-hostable caBLE v2 (CTAP 2.2 hybrid) tunnel relay.
#[derive(Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    after_help = cli_support::DURATION_FORMS
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Print the resolved configuration as TOML (defaults, file, environment, flags) and exit.
    #[arg(long, conflicts_with = "check")]
    print_config: bool,
    /// Check the resolved configuration as starting would (limits, TLS certificate and key
    /// files, plaintext on a public address, the contact store's folder), print it is ok and
    /// exit, without binding.
    #[arg(long)]
    check: bool,
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
    /// Check a running relay: GET /healthz, exit 0 if it answers 200 OK, 1 if not (for
    /// container health checks). Reads the same configuration as serving does.
    #[command(after_help = cli_support::DURATION_FORMS)]
    Health {
        /// Address to check [default: the configured --listen; 0.0.0.0 and [::] mean this
        /// machine]. The configured --metrics-listen address is checked in plain HTTP.
        #[arg(long, value_name = "ADDR")]
        address: Option<SocketAddr>,
        /// Check /readyz instead: fails once the relay has begun shutting down.
        #[arg(long)]
        ready: bool,
        /// Give up after this long.
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
        // The configuration, boxed: it is much larger than the other subcommands' args.
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// Print the manual page (roff), generated from these flags: `tunnel-server man | man -l -`.
    Man,
    /// Print what a fleet of relays behind one nginx router needs, from the relays'
    /// configuration (its routing_id is pod 0's; pod N serves routing_id + N, see
    /// --routing-id-from-hostname): the router's configuration, or one Service per pod.
    /// deploy/kubernetes/ ships both for 3 replicas.
    Fleet {
        /// What to print.
        #[arg(value_enum)]
        output: FleetOutput,
        /// Pods in the StatefulSet.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// The StatefulSet's name (its pods are NAME-0, NAME-1, …).
        #[arg(long, default_value = "relay")]
        name: String,
        // The relays' configuration (routing ID and listen port), boxed as for `health`.
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FleetOutput {
    /// The nginx configuration of the router (http context).
    Router,
    /// One Kubernetes Service per pod (YAML), the router's upstreams.
    Services,
}

fn main() -> ExitCode {
    // Purge freed pages on jemalloc's own thread, over its decay time, even while the relay
    // is idle (without it, only allocation activity purges them).
    #[cfg(feature = "jemalloc")]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Domain {
            ids,
            find,
            contains,
        }) => domain_command(ids, find, contains),
        Some(Command::Health {
            address,
            ready,
            timeout,
            serve,
        }) => health_command(address, ready, timeout, &serve),
        Some(Command::Man) => man_page(),
        Some(Command::Fleet {
            output,
            replicas,
            name,
            serve,
        }) => fleet_command(output, replicas, name, &serve),
        None if cli.print_config => print_config(&cli.serve),
        None if cli.check => check_config(&cli.serve),
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

fn man_page() -> anyhow::Result<()> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .context("cannot write the manual page")
}

fn print_config(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    print!(
        "{}",
        toml::to_string(&config).context("cannot render the configuration")?
    );
    Ok(())
}

fn check_config(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    config.check()?;
    let tls = match &config.tls {
        Some(t) => format!("TLS {} and {}", t.cert.display(), t.key.display()),
        None if config.insecure_plaintext => "plaintext behind a TLS proxy".to_string(),
        None => "plaintext on loopback".to_string(),
    };
    println!(
        "configuration ok: listen {}, routing ID {}, {tls}",
        config.listen, config.routing_id
    );
    Ok(())
}

fn fleet_command(
    output: FleetOutput,
    replicas: u32,
    name: String,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    // The fleet's base routing ID: the host name of whoever renders does not matter.
    let config = args.resolve_base()?;
    let fleet = Fleet {
        name,
        replicas,
        base: config.routing_id,
        port: config.listen.port(),
    };
    let text = match output {
        FleetOutput::Router => fleet::render_router(&fleet)?,
        FleetOutput::Services => fleet::render_services(&fleet)?,
    };
    print!("{text}");
    Ok(())
}

fn health_command(
    address: Option<SocketAddr>,
    ready: bool,
    timeout: Duration,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    // Only the addresses and TLS matter here, not which routing ID this pod serves.
    let config = args.resolve_base()?;
    let target = health::local_target(address.unwrap_or(config.listen));
    // The metrics listener is plain HTTP whatever the main listener speaks.
    let tls = match config.metrics_listen.map(health::local_target) {
        Some(metrics) if metrics == target => None,
        _ => config.tls.as_ref(),
    };
    let (path, failed) = if ready {
        ("/readyz", "not ready")
    } else {
        ("/healthz", "unhealthy")
    };
    let ok = health::check(target, path, tls, timeout).context(failed)?;
    println!("{ok}");
    Ok(())
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = args.resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    config.limits.max_connections =
        tunnel_server::fd_limit::reconcile(config.limits.max_connections);
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
