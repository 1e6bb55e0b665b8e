//! `mfa-proxy`: serve, or check a configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tracing::{error, info, warn};

use mfa_proxy::config::Config;
use mfa_proxy::io::Bound;
use mfa_proxy::radius::dict::Dictionary;

#[derive(Parser)]
#[command(
    name = "mfa-proxy",
    version,
    about = "RADIUS second-factor authentication proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the configuration and print a summary (never secrets).
    Check {
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Exit status for a configuration problem.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, log_format } => {
            init_logging(log_format);
            serve(&config)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The configuration and the dictionary it names.
fn load(path: &Path) -> Result<(Config, Arc<Dictionary>), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let dictionary = match &config.server.dictionary {
        None => Dictionary::builtin(),
        Some(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                path.parent().unwrap_or(Path::new(".")).join(p)
            };
            Dictionary::from_file(&p).map_err(|e| format!("`server.dictionary`: {e}"))?
        }
    };
    Ok((config, Arc::new(dictionary)))
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok((config, dictionary)) => {
            print!("{}", config.summary());
            println!("dictionary: {} attributes", dictionary.len());
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(path: &Path) -> ExitCode {
    let (config, dictionary) = match load(path) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in &config.warnings {
        warn!("{w}");
    }
    if config
        .clients
        .iter()
        .any(|c| c.secret.expose() == b"testing123")
    {
        warn!(
            "a client uses the trial secret \"testing123\": this configuration is for trials only"
        );
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let bound = match Bound::bind(&config, dictionary) {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for a in bound.listen_addrs() {
            info!(address = %a, "listening");
        }
        info!(
            server = %config.server.name,
            clients = config.clients.len(),
            upstreams = config.upstreams.len(),
            "mfa-proxy started"
        );
        match bound.run(shutdown_signal(), None).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term => info!("SIGTERM: stopping"),
    }
}
