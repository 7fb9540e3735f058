//! The `minilvb` command: serve (default), migrate, check.

use clap::{Parser, Subcommand};
use minilvb::{Application, Config};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: actors, HTTP workers and the supervisor allocate on different threads, and
/// glibc's per-thread arenas keep what one thread frees away from the others; under a
/// million members mimalloc holds markedly less resident memory for the same data.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "minilvb",
    version,
    about = "Realtime room server for Mini LVB-style live-streaming apps"
)]
struct Cli {
    /// Configuration file (TOML); `minilvb.toml` in the working directory when present.
    #[arg(long, global = true, env = "MINILVB_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.bind).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Production: never generate a missing secret (sets server.production).
    #[arg(long, global = true)]
    production: bool,
    /// Log format.
    #[arg(long, global = true, env = "MINILVB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Also write logs to daily files (minilvb.log.YYYY-MM-DD) in this directory.
    #[arg(long, global = true, env = "MINILVB_LOG_DIR")]
    log_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the protocol (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and the database, print sample signatures, name likely
    /// causes of problems; exits non-zero when something is wrong.
    Check,
}

/// Logs go to stderr, and to daily files when a directory is given. The returned guard
/// flushes the file writer on exit.
fn init_logs(
    format: &str,
    dir: Option<&std::path::Path>,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::fmt::writer::{MakeWriterExt, OptionalWriter};
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINILVB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (file, guard) = match dir {
        Some(d) => {
            let (w, g) =
                tracing_appender::non_blocking(tracing_appender::rolling::daily(d, "minilvb.log"));
            (Some(w), Some(g))
        }
        None => (None, None),
    };
    let writer = std::io::stderr.and(move || match &file {
        Some(w) => OptionalWriter::some(w.clone()),
        None => OptionalWriter::none(),
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if format == "json" {
        builder.json().init();
    } else {
        // Colours only for a terminal: files and pipes get plain text.
        let ansi = dir.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(ansi).init();
    }
    guard
}

/// The bundled SQLite allocates with glibc's malloc, and sqlx runs each SQLite connection
/// on a thread of its own: every such thread got an arena that keeps what it freed, about
/// 12 bytes of resident memory per room member at a million. One arena serves them (the
/// Rust side allocates with mimalloc, not here). `MALLOC_ARENA_MAX`, when set, decides.
fn limit_c_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

fn main() -> ExitCode {
    limit_c_arenas();
    let cli = Cli::parse();
    let _log_guard = init_logs(&cli.log_format, cli.log_dir.as_deref());
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("minilvb: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(bind) = cli.bind {
        config.server.bind = bind;
    }
    if cli.production {
        config.server.production = true;
    }
    let command = cli.command.unwrap_or(Command::Serve);
    // Only a server start writes generated secrets; check reports what it would do.
    let filled = match minilvb::secrets::fill(&mut config, matches!(command, Command::Serve)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("minilvb: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = &filled {
        // The names and the file only: the values never reach a log.
        tracing::info!(
            keys = ?f.keys,
            file = %f.path.display(),
            written = f.wrote,
            "using generated secrets (set them in minilvb.toml or the environment to choose your own)"
        );
    }
    let sys = actix::System::new();
    let result = sys.block_on(async move {
        match command {
            Command::Serve => serve(config, filled).await,
            Command::Migrate => migrate(config).await,
            Command::Check => {
                return if minilvb::check::run(&config, filled.as_ref()).await {
                    Ok(())
                } else {
                    Err("check found problems".into())
                };
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("minilvb: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, filled: Option<minilvb::secrets::Filled>) -> Result<(), String> {
    let token = config.admin.token.clone();
    // The address a local browser reaches: the bound host, or loopback for a wildcard.
    let host = match config.server.bind.rsplit_once(':').map(|(h, _)| h) {
        Some("0.0.0.0" | "[::]" | "") | None => "127.0.0.1".to_string(),
        Some(h) => h.to_string(),
    };
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(port = app.port(), "minilvb listening");
    // As notebook servers do: a person at a terminal gets the way in, once, on stdout
    // (never in the log), when the token is one this start made up or read back.
    let generated = filled.is_some_and(|f| f.keys.contains(&"admin.token"));
    if generated && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!(
            "\n  minilvb is serving. The dashboard:\n    http://{host}:{}/dashboard?token={}\n",
            app.port(),
            token.expose()
        );
    }
    let handle = app.handle();
    actix::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining requests, then flushing state");
        handle.stop(true).await;
    });
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn migrate(config: Config) -> Result<(), String> {
    let store = minilvb::store::open(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    println!("migrations applied");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
