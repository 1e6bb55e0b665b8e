//! `mfa-proxy`: serve, or check a configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing::{error, info, warn};

use mfa_proxy::cli::{
    Cli, Command, DirectoryCmd, LogFormat, PolicyCmd, ReportCmd, ReportFormat, SecretFormatArg,
    TokenCmd, TotpCmd, UserCmd,
};
use mfa_proxy::config::Config;
use mfa_proxy::io::Bound;
use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::store::{Store, file};

/// The imports' file handling: errors files, token files, PSKC secrets.
#[path = "main/imports.rs"]
mod imports;
use imports::{PskcSecrets, import_pskc, is_pskc, read_token_file, rows_in, write_import_errors};

/// mimalloc instead of glibc's malloc. A login's buffers are made on the
/// packet thread and dropped on the store thread, and the other way round:
/// glibc then refills neither thread's cache, and every allocation on the
/// packet thread took its slow path (12 % of that thread). `no_thp` keeps
/// mimalloc's arenas out of transparent huge pages, which cost 13 MB of
/// resident memory for nothing.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration problem.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve {
            config,
            log_format,
            allow_empty_store,
        } => {
            init_logging(log_format);
            serve(&config, allow_empty_store)
        }
        Command::Init { config } => init(&config),
        other => match admin(other) {
            Ok(()) => ExitCode::SUCCESS,
            Err(AdminFailure::Config(e)) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(AdminFailure::Command(e)) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

pub(crate) enum AdminFailure {
    Config(String),
    Command(String),
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The store of `config`, which must exist: admin commands never create one.
fn open_store(config: &Path) -> Result<(Config, Box<dyn Store>), AdminFailure> {
    let config = Config::load(config).map_err(|e| AdminFailure::Config(e.to_string()))?;
    let store = mfa_proxy::store::open::open_existing(&config.store)
        .map_err(|e| AdminFailure::Command(e.to_string()))?;
    Ok((config, store))
}

/// `mfa-proxy init`: creates what is missing of the store.
fn init(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (db, key) = (
        mfa_proxy::store::open::describe(&config.store),
        config.store.key_file.display(),
    );
    match mfa_proxy::store::open::init(&config.store) {
        Ok(file::Opened::Existing) => {
            println!("{db}: the store exists already; nothing to do");
            ExitCode::SUCCESS
        }
        Ok(file::Opened::Created) => {
            println!("created {db} and its seed key {key}: back them up together");
            ExitCode::SUCCESS
        }
        Ok(file::Opened::CreatedEmpty) => {
            println!("created an empty {db} under the existing seed key {key}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line from standard input (a password or PIN), without its newline.
fn stdin_line() -> Result<zeroize::Zeroizing<String>, AdminFailure> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| AdminFailure::Command(e.to_string()))?;
    Ok(zeroize::Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn duration_secs(s: &str, what: &str) -> Result<i64, AdminFailure> {
    humantime::parse_duration(s)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| {
            AdminFailure::Command(format!(
                "{what}: \"{s}\" is not a duration, e.g. \"90d\" or \"300s\""
            ))
        })
}

fn admin(cmd: Command) -> Result<(), AdminFailure> {
    use mfa_proxy::cli;
    let fail = |e: cli::AdminError| AdminFailure::Command(e.to_string());
    let now = unix_now();
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::User { config, action } => {
            let (cfg, store) = open_store(&config)?;
            let store = store.as_ref();
            match action {
                UserCmd::Add {
                    name,
                    email,
                    phone,
                    password_stdin,
                    groups,
                } => {
                    let groups = groups
                        .as_deref()
                        .map(cli::parse_groups)
                        .transpose()
                        .map_err(fail)?
                        .unwrap_or_default();
                    let password = password_stdin.then(stdin_line).transpose()?;
                    cli::user_add(store, &name, email, phone, password, groups, now)
                        .map_err(fail)?;
                    println!("added {name}");
                }
                UserCmd::Set {
                    name,
                    method,
                    email,
                    phone,
                    pin_stdin,
                    language,
                    groups,
                } => {
                    let groups = groups
                        .as_deref()
                        .map(cli::parse_groups)
                        .transpose()
                        .map_err(fail)?;
                    let changes = cli::UserChanges {
                        method: method.as_deref(),
                        email: email.as_deref(),
                        phone: phone.as_deref(),
                        pin: pin_stdin.then(stdin_line).transpose()?,
                        language: language.as_deref(),
                        groups,
                    };
                    cli::user_set(store, &name, changes).map_err(fail)?;
                    println!("updated {name}");
                    let known = |l: &str| {
                        l == cfg.mfa.language || cfg.mfa.languages.contains_key(&l.to_lowercase())
                    };
                    if let Some(l) = language.as_deref().filter(|l| !l.is_empty() && !known(l)) {
                        eprintln!(
                            "warning: {config}: no [messages.{l}]; {name} gets the default language's texts",
                            config = config.display()
                        );
                    }
                }
                UserCmd::Invite { names, all_pending } => {
                    let who = if all_pending {
                        cli::Invitees::AllPending
                    } else {
                        cli::Invitees::Named(names)
                    };
                    let mut err = std::io::stderr().lock();
                    let invited = cli::user_invite(store, &cfg, who, now, &mut out, &mut err)
                        .map_err(|e| match e {
                            cli::AdminError::Invite(
                                e @ mfa_proxy::enroll::SetupError::Runtime(_),
                            ) => AdminFailure::Command(e.to_string()),
                            cli::AdminError::Invite(e) => AdminFailure::Config(e.to_string()),
                            e => fail(e),
                        })?;
                    if invited.failed > 0 {
                        return Err(AdminFailure::Command(format!(
                            "{} of {} users not invited",
                            invited.failed,
                            invited.failed + invited.sent
                        )));
                    }
                }
                UserCmd::List => cli::user_list(store, &mut out).map_err(fail)?,
                UserCmd::Show { name } => {
                    cli::user_show(store, &name, now, &mut out).map_err(fail)?
                }
                UserCmd::OpenEnrollment { name, duration } => {
                    let until = cli::open_enrollment(store, &name, &duration, now).map_err(fail)?;
                    match until {
                        Some(t) => println!(
                            "{name} may enroll at the portal with the password alone until {t}"
                        ),
                        None => println!("the enrollment window of {name} is closed"),
                    }
                }
                UserCmd::Forget { name } => {
                    let n = store.forget(&name).map_err(|e| fail(e.into()))?;
                    println!(
                        "revoked {n} remembered login{} of {name}",
                        if n == 1 { "" } else { "s" }
                    );
                }
                UserCmd::Remove { name } => {
                    if !store.remove_user(&name).map_err(|e| fail(e.into()))? {
                        return Err(AdminFailure::Command(format!("no user named \"{name}\"")));
                    }
                    println!("removed {name}");
                }
                UserCmd::Import { file } => {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| AdminFailure::Command(format!("{}: {e}", file.display())))?;
                    let mut progress = cli::Progress::stderr("users", rows_in(&text));
                    let tick = &mut || progress.tick(std::time::Instant::now());
                    let imported = cli::user_import(store, &text, now, tick);
                    progress.finish();
                    let (n, errors) = imported.map_err(fail)?;
                    println!("imported {n} users");
                    write_import_errors(&file, &errors)?;
                }
            }
        }
        Command::Totp { config, action } => {
            let (cfg, store) = open_store(&config)?;
            let store = store.as_ref();
            match action {
                TotpCmd::Enroll { name, svg } => {
                    let e = cli::totp_enroll(store, &name, &cfg.server.name).map_err(fail)?;
                    println!("Scan this with the authenticator app, then run:");
                    println!("  mfa-proxy totp activate {name} <code shown by the app>");
                    println!("{}", cli::qr_terminal(&e.uri).map_err(fail)?);
                    println!("{}", e.uri.as_str());
                    if let Some(p) = svg {
                        std::fs::write(&p, cli::qr_svg(&e.uri).map_err(fail)?)
                            .map_err(|e| AdminFailure::Command(format!("{}: {e}", p.display())))?;
                        println!("QR code written to {}", p.display());
                    }
                }
                TotpCmd::Activate { name, code } => {
                    cli::totp_activate(store, &name, &code, now as u64, 1).map_err(fail)?;
                    println!("activated the authenticator app of {name}");
                }
            }
        }
        Command::Directory { config, action } => {
            let (config, store) = open_store(&config)?;
            let DirectoryCmd::Sync {
                name,
                dry_run,
                force,
            } = action;
            let options = mfa_proxy::directory::sync::Options { dry_run, force };
            let mut out = std::io::stdout().lock();
            let ok = cli::directory_sync(
                &config,
                store.as_ref(),
                name.as_deref(),
                options,
                now,
                &mut out,
            )
            .map_err(fail)?;
            if !ok {
                return Err(AdminFailure::Command(
                    "a directory sync failed (see above)".into(),
                ));
            }
        }
        Command::Token { config, action } => {
            let (_, store) = open_store(&config)?;
            let store = store.as_ref();
            match action {
                TokenCmd::Import {
                    file,
                    secret_format,
                    password_file,
                    password_env,
                    key_file,
                    key_env,
                    user_map,
                } => {
                    let text = read_token_file(&file)?;
                    let (n, errors) = if is_pskc(&file, &text) {
                        let secrets = PskcSecrets {
                            password_file,
                            password_env,
                            key_file,
                            key_env,
                            user_map,
                        };
                        import_pskc(store, &file, &text, secrets, now)?
                    } else {
                        if user_map.is_some() {
                            return Err(AdminFailure::Command(
                                "--user-map is for PSKC files; a CSV names each token's upn".into(),
                            ));
                        }
                        let format = match secret_format {
                            SecretFormatArg::Base32 => cli::SecretFormat::Base32,
                            SecretFormatArg::Hex => cli::SecretFormat::Hex,
                        };
                        let mut progress = cli::Progress::stderr("tokens", rows_in(&text));
                        let tick = &mut || progress.tick(std::time::Instant::now());
                        let imported = cli::token_import(store, &text, format, now, tick);
                        progress.finish();
                        imported.map_err(fail)?
                    };
                    println!("imported {n} tokens");
                    write_import_errors(&file, &errors)?;
                }
                TokenCmd::Activate { serial, code } => {
                    let user =
                        cli::token_activate(store, &serial, &code, now as u64, 1).map_err(fail)?;
                    println!("activated token {serial} of {user}");
                }
                TokenCmd::Resync {
                    name,
                    first,
                    second,
                } => {
                    let serial = cli::hotp_resync(store, &name, &first, &second).map_err(fail)?;
                    println!("resynchronised token {serial} of {name}");
                }
                TokenCmd::Remove { serial } => {
                    if !store.remove_token(&serial).map_err(|e| fail(e.into()))? {
                        return Err(AdminFailure::Command(format!(
                            "no token has serial {serial}"
                        )));
                    }
                    println!("removed token {serial}");
                }
            }
        }
        Command::Block {
            name,
            reason,
            duration,
            config,
        } => {
            let (_, store) = open_store(&config)?;
            let store = store.as_ref();
            let until = now + duration_secs(&duration, "--for")?;
            store
                .block(&name, &reason, now, until)
                .map_err(|e| fail(e.into()))?;
            println!("blocked {name}");
        }
        Command::Unblock {
            name,
            reason,
            config,
        } => {
            let (_, store) = open_store(&config)?;
            let store = store.as_ref();
            store
                .unblock(&name, &reason, now)
                .map_err(|e| fail(e.into()))?;
            println!("unblocked {name}");
        }
        Command::Bypass {
            name,
            reason,
            duration,
            config,
        } => {
            let (_, store) = open_store(&config)?;
            let store = store.as_ref();
            let until = now + duration_secs(&duration, "--for")?;
            store
                .add_bypass(&name, &reason, now, until)
                .map_err(|e| fail(e.into()))?;
            println!("the next login of {name} within {duration} skips the second factor");
        }
        Command::Report {
            config,
            format,
            which,
        } => {
            let (_, store) = open_store(&config)?;
            let store = store.as_ref();
            let format = match format {
                ReportFormat::Table => cli::Format::Table,
                ReportFormat::Csv => cli::Format::Csv,
                ReportFormat::Json => cli::Format::Json,
            };
            match which {
                ReportCmd::Signins { user, since } => {
                    let since = match since {
                        None => None,
                        Some(s) => Some(match humantime::parse_rfc3339_weak(&s) {
                            Ok(t) => t
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs() as i64),
                            Err(_) => now - duration_secs(&s, "--since")?,
                        }),
                    };
                    cli::report_signins(store, user.as_deref(), since, format, &mut out)
                        .map_err(fail)?;
                }
                ReportCmd::Blocked => cli::report_blocked(store, format, &mut out).map_err(fail)?,
                ReportCmd::Bypassed => {
                    cli::report_bypassed(store, format, &mut out).map_err(fail)?
                }
                ReportCmd::Users => cli::report_users(store, format, &mut out).map_err(fail)?,
                ReportCmd::Status => {
                    cli::report_status(store, now, format, &mut out).map_err(fail)?
                }
            }
        }
        Command::Policy {
            config,
            action:
                PolicyCmd::Explain {
                    user,
                    client,
                    ip,
                    groups,
                    nas_identifier,
                    calling_station_id,
                    auth,
                },
        } => {
            let (config, _) = load(&config).map_err(AdminFailure::Config)?;
            // The store's facts about the user, if there is a store yet.
            let standing = match mfa_proxy::store::open::open_existing(&config.store) {
                Ok(store) => cli::policy::standing(store.as_ref(), &user, now).map_err(fail)?,
                Err(e) => {
                    println!("store not read ({e}): the user is taken as unknown");
                    mfa_proxy::policy::Standing::unknown()
                }
            };
            let q = cli::policy::Query {
                user,
                client,
                ip,
                groups,
                nas_identifier,
                calling_station_id,
                auth,
            };
            print!(
                "{}",
                cli::policy::explain(&config, &q, &standing, now).map_err(fail)?
            );
        }
        Command::Backup { file, config } => {
            let config = Config::load(&config).map_err(|e| AdminFailure::Config(e.to_string()))?;
            cli::ops::backup(&config.store, &file, &mut out).map_err(fail)?;
        }
        Command::Restore { file, config } => {
            let config = Config::load(&config).map_err(|e| AdminFailure::Config(e.to_string()))?;
            cli::ops::restore(&config.store, &file, now, &mut out).map_err(fail)?;
        }
        Command::Migrate {
            to,
            to_file,
            to_env,
            config,
        } => {
            let config = Config::load(&config).map_err(|e| AdminFailure::Config(e.to_string()))?;
            let url =
                cli::ops::read_url(to, to_file.as_deref(), to_env.as_deref()).map_err(fail)?;
            cli::ops::migrate(&config.store, &url, &mut out).map_err(fail)?;
        }
        Command::Serve { .. } | Command::Check { .. } | Command::Init { .. } => {
            unreachable!("handled in main")
        }
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: a file or the journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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
    if let Some(g) = &config.groups {
        mfa_proxy::engine::GroupSource::resolve(g, &dictionary)?;
    }
    Ok((config, Arc::new(dictionary)))
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok((config, dictionary)) => {
            print!("{}", config.summary());
            println!("dictionary: {} attributes", dictionary.len());
            if config.mfa.enabled {
                println!("store: {}", mfa_proxy::store::open::status(&config.store));
            }
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(path: &Path, allow_empty_store: bool) -> ExitCode {
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
    match mfa_proxy::io::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            info!(
                before,
                after, "raised the open-files limit to the hard limit"
            )
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise the open-files limit"),
    }
    // Before the runtime: a store's blocking calls (PostgreSQL's client
    // runs a runtime of its own) must not run on the runtime's thread.
    let store: Option<Arc<dyn Store>> = if config.mfa.enabled {
        match open_serve_store(&config, allow_empty_store) {
            Ok(s) => Some(Arc::<dyn Store>::from(s)),
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
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
        let login_store = store
            .clone()
            .map(|s| s as Arc<dyn mfa_proxy::store::LoginStore>);
        let bound = match Bound::bind(&config, dictionary, login_store) {
            Ok(b) => match &store {
                Some(s) => b.with_admin_store(s.clone()),
                None => b,
            },
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for a in bound.listen_addrs() {
            info!(address = %a, "listening");
        }
        if let Some(a) = bound.http_addr() {
            info!(address = %a, "HTTP listening: /v1/verifications, /healthz, /metrics");
        }
        info!(
            server = %config.server.name,
            clients = config.clients.len(),
            upstreams = config.upstreams.len(),
            "mfa-proxy started"
        );
        // Signals are taken before systemd hears the proxy is ready, so a
        // reload or stop right after start is never the default action.
        let signals = match Signals::register() {
            Ok(s) => s,
            Err(e) => {
                error!("cannot handle signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (commands, loop_commands) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(reload_signal(signals.hup, path.to_owned(), commands));
        // systemd's Type=notify: the listeners are bound (no-op elsewhere).
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            warn!("cannot tell systemd the proxy is ready: {e}");
        }
        match bound
            .run(
                shutdown_signal(signals.term, signals.int),
                Some(loop_commands),
            )
            .await
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The store for `serve`: created on a first run, refused when it
/// vanished (unless `allow_empty`), and loudly warned about when it holds
/// no user while unenrolled users are let through.
fn open_serve_store(config: &Config, allow_empty: bool) -> Result<Box<dyn Store>, String> {
    let (db, key) = (
        mfa_proxy::store::open::describe(&config.store),
        config.store.key_file.display(),
    );
    let (store, opened) = mfa_proxy::store::open::open_for_serve(&config.store, allow_empty)
        .map_err(|e| e.to_string())?;
    match opened {
        file::Opened::Existing => info!(database = %db, "store opened"),
        file::Opened::Created => info!(
            database = %db,
            key = %key,
            "first run: created the store; back up the database and its key together"
        ),
        file::Opened::CreatedEmpty => warn!(
            database = %db,
            "--allow-empty-store: created an empty database where one was expected"
        ),
    }
    if config.mfa.unenrolled == mfa_proxy::config::Unenrolled::Accept {
        // A database that is down now is said so by the store itself.
        if let Ok(users) = store.users()
            && users.is_empty()
        {
            warn!(
                database = %db,
                "the store has no users and unenrolled = \"accept\": every login passes on its first factor alone"
            );
        }
    }
    Ok(store)
}

/// The signals `serve` handles, registered before it reports ready.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// SIGHUP (`systemctl reload`): the configuration file is read and checked
/// with the loader `check` uses; a valid one goes to the running loop,
/// which applies it between two packets and logs what changed and what
/// still needs a restart (see `io::reload`). A file that fails is refused
/// with the reason, and the configuration in force stays. A HUP never
/// stops the proxy (its default action would).
async fn reload_signal(
    mut hup: tokio::signal::unix::Signal,
    path: PathBuf,
    commands: tokio::sync::mpsc::UnboundedSender<mfa_proxy::io::Command>,
) {
    use mfa_proxy::io::Command;
    while hup.recv().await.is_some() {
        info!(config = %path.display(), "SIGHUP: reloading the configuration");
        // Off the loop's thread: reading files (secrets, certificates, the
        // dictionary) may block.
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&p))
            .await
            .unwrap_or_else(|e| Err(format!("the loader failed: {e}")));
        let command = match loaded {
            Ok((config, dictionary)) => Command::Reload {
                config: Box::new(config),
                dictionary,
                reply: None,
            },
            Err(e) => {
                error!(
                    config = %path.display(),
                    "SIGHUP: the configuration is not valid, nothing changed: {e}"
                );
                Command::ReloadRefused
            }
        };
        if commands.send(command).is_err() {
            return;
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = int.recv() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
    }
}
