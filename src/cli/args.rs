//! The command line: every verb, its arguments, what it does and an example.
//! `main.rs` parses [`Cli`] and dispatches; a test runs `--help` for every
//! verb and parses every example, so the help text stays true.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::VERSION;

#[derive(Debug, Parser)]
#[command(
    name = "mfa-proxy",
    version = VERSION,
    about = "RADIUS second-factor authentication proxy",
    long_about = "RADIUS second-factor authentication proxy.\n\n\
        `serve` runs the proxy; the other verbs check the configuration and \
        administer the users, tokens, blocks and bypasses in its store. Every \
        verb takes --config FILE (default: proxy.toml in the current directory).",
    after_help = "Example:\n  mfa-proxy serve --config /etc/mfa-proxy/proxy.toml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    ///
    /// Binds the RADIUS (and HTTP) listeners of the configuration, creates
    /// the store on a first run (refusing one that vanished, unless
    /// --allow-empty-store), and relays and checks logins until SIGINT or
    /// SIGTERM; SIGHUP checks the configuration again. Logs go to standard
    /// error.
    #[command(
        after_help = "Example:\n  mfa-proxy serve --config /etc/mfa-proxy/proxy.toml --log-format json"
    )]
    Serve {
        /// The configuration file.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
        /// text, or json for one JSON object per line.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Start even though the database is missing beside its seed key
        /// (it was deleted or moved): a new, empty one is created.
        #[arg(long)]
        allow_empty_store: bool,
    },
    /// Create the store (database and seed key) if it does not exist yet.
    ///
    /// `serve` creates the store on its first run; no other command ever
    /// creates one. `init` makes it ahead of time, to add users before the
    /// first start. An existing database is never replaced.
    #[command(after_help = "Example:\n  mfa-proxy init --config /etc/mfa-proxy/proxy.toml")]
    Init {
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and print a summary (never secrets).
    ///
    /// Prints the listeners, clients, upstreams and providers and exits 0;
    /// a bad key is named on standard error with exit status 2.
    #[command(after_help = "Example:\n  mfa-proxy check --config /etc/mfa-proxy/proxy.toml")]
    Check {
        /// The configuration file.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Manage users.
    ///
    /// Add, change, list, show, remove and import the users of the store, and
    /// forget their remembered logins.
    #[command(after_help = "Example:\n  mfa-proxy user add alice --email alice@example.org")]
    User {
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Enroll and activate authenticator apps.
    ///
    /// `enroll` makes a secret for the app to scan; it is pending until
    /// `activate` sees the code the app shows.
    #[command(after_help = "Example:\n  mfa-proxy totp enroll alice")]
    Totp {
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: TotpCmd,
    },
    /// OATH hardware tokens: import, activate, resynchronise, remove.
    #[command(after_help = "Example:\n  mfa-proxy token import tokens.csv")]
    Token {
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Users from LDAP directories (`[[directory]]`): sync them now.
    #[command(after_help = "Examples:\n  \
        mfa-proxy directory sync --dry-run\n  \
        mfa-proxy directory sync corp")]
    Directory {
        /// The configuration file, which names the store and the sources.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: DirectoryCmd,
    },
    /// Block a user's second factor (every attempt is denied).
    ///
    /// The block ends after --for, or with `unblock`. It is recorded with
    /// its reason (`report blocked`).
    #[command(after_help = "Example:\n  mfa-proxy block alice --reason \"lost phone\" --for 7d")]
    Block {
        /// The user's name.
        name: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        /// How long, e.g. "90d" (the default) or "12h".
        #[arg(long = "for", default_value = "90d")]
        duration: String,
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Lift a block or a lockout.
    ///
    /// Recorded with its reason (`report blocked`).
    #[command(after_help = "Example:\n  mfa-proxy unblock alice --reason \"phone found\"")]
    Unblock {
        /// The user's name.
        name: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Let a user's next login through without a second factor, once.
    ///
    /// The bypass is used by the first login within --for and then ends;
    /// unused, it expires. Recorded with its reason (`report bypassed`).
    #[command(
        after_help = "Example:\n  mfa-proxy bypass alice --for 300s --reason \"phone at home\""
    )]
    Bypass {
        /// The user's name.
        name: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
        /// How long the bypass waits to be used, e.g. "300s".
        #[arg(long = "for", default_value = "300s")]
        duration: String,
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Reports from the store.
    ///
    /// Sign-ins, blocks, bypasses and users, as a table, CSV or JSON (one
    /// object per line).
    #[command(after_help = "Example:\n  mfa-proxy report signins --since 24h --format csv")]
    Report {
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        /// table, csv, or json (one object per line).
        #[arg(long, value_enum, default_value_t = ReportFormat::Table, global = true)]
        format: ReportFormat,
        #[command(subcommand)]
        which: ReportCmd,
    },
    /// Copy the SQLite store to a new file while `serve` runs.
    ///
    /// A consistent copy (SQLite's online backup) of users, tokens, blocks,
    /// bypasses and the audit trail, mode 0600; an existing FILE is never
    /// overwritten. The seed key is not in it: back up key_file with it.
    /// A PostgreSQL store is backed up with pg_dump (the message says how).
    #[command(
        after_help = "Example:\n  mfa-proxy backup /var/backups/mfa-proxy/mfa-2025-01-31.db --config /etc/mfa-proxy/proxy.toml"
    )]
    Backup {
        /// The new file.
        file: PathBuf,
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Put a backup in place of the SQLite store (with `serve` stopped).
    ///
    /// Refused while the database is in use (a running `serve` or another
    /// command has it open). FILE must be an mfa-proxy database this
    /// version reads, and the configured key_file must open its seeds
    /// (copy the key backed up with it first). The database replaced is
    /// kept as PATH.before-restore-UNIXTIME. A PostgreSQL store is restored
    /// with pg_restore (the message says how).
    #[command(
        after_help = "Example:\n  mfa-proxy restore /var/backups/mfa-proxy/mfa-2025-01-31.db --config /etc/mfa-proxy/proxy.toml"
    )]
    Restore {
        /// The backup file (from `mfa-proxy backup`).
        file: PathBuf,
        /// The configuration file, which names the store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Copy the SQLite store into an empty PostgreSQL database.
    ///
    /// Everything: users, tokens (their seeds stay sealed with the same
    /// key_file), replay state, lockouts, blocks, bypasses, remembered
    /// logins, the histories and the audit trail, in one transaction; then
    /// the counts are checked and printed. Stop `serve` first. The URL holds
    /// a password: prefer --to-file or --to-env to --to, which other users
    /// of the machine can see in the process list. It is never printed.
    #[command(after_help = "Examples:\n  \
        mfa-proxy migrate --to-file /etc/mfa-proxy/db.url --config /etc/mfa-proxy/proxy.toml\n  \
        mfa-proxy migrate --to-env MFA_DB_URL")]
    #[command(group = clap::ArgGroup::new("target").required(true).multiple(false))]
    Migrate {
        /// postgres://user:password@host/db
        #[arg(long, group = "target")]
        to: Option<String>,
        /// A file holding the URL.
        #[arg(long, group = "target")]
        to_file: Option<PathBuf>,
        /// An environment variable holding the URL.
        #[arg(long, group = "target")]
        to_env: Option<String>,
        /// The configuration file, which names the SQLite store.
        #[arg(long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Dry runs of the [[policy]] tables.
    #[command(
        after_help = "Example:\n  mfa-proxy policy explain --user alice --client vpn --ip 10.1.2.3"
    )]
    Policy {
        /// The configuration file, with the policies and the store.
        #[arg(long, default_value = "proxy.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: PolicyCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Which policy a login would match, why, and what it would need.
    ///
    /// Runs the proxy's own decision on the store's facts about the user
    /// (groups, blocks, lockouts, bypasses, remembered logins) without
    /// logging in. --ip is the address trusted networks test: the user's
    /// own when the client has user_address_from, else the NAS's.
    #[command(after_help = "Examples:\n  \
        mfa-proxy policy explain --user alice --client vpn --ip 10.1.2.3\n  \
        mfa-proxy policy explain --user bob --client vpn --group contractors --nas-identifier asa-1")]
    Explain {
        /// The user's name, as the NAS sends it.
        #[arg(long)]
        user: String,
        /// A [[client]] name.
        #[arg(long)]
        client: String,
        /// The address trusted networks are tested against.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// A group the upstream's Access-Accept would name (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The NAS-Identifier the request would carry.
        #[arg(long)]
        nas_identifier: Option<String>,
        /// The Calling-Station-Id the request would carry (for remembered
        /// logins of the ip scope when the client has no user_address_from).
        #[arg(long)]
        calling_station_id: Option<String>,
        /// pap (the default), chap, mschap or eap.
        #[arg(long)]
        auth: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user.
    ///
    /// --password-stdin reads a local password from standard input (for
    /// `[primary] mode = "local"`); it is stored as an argon2id hash.
    #[command(after_help = "Examples:\n  \
        mfa-proxy user add alice --email alice@example.org --phone +4930123456\n  \
        mfa-proxy user add bob --groups vpn,admins\n  \
        echo 'alice-pass' | mfa-proxy user add alice --password-stdin")]
    Add {
        /// The user's name, as the NAS sends it in User-Name.
        name: String,
        /// The user's email address.
        #[arg(long)]
        email: Option<String>,
        /// + and the country code, e.g. +4930123456.
        #[arg(long)]
        phone: Option<String>,
        /// Read a local password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// The groups the user is in, separated by commas (policies match them).
        #[arg(long)]
        groups: Option<String>,
    },
    /// Change a user's default method, email, phone number, call PIN, language or groups.
    #[command(after_help = "Examples:\n  \
        mfa-proxy user set alice --method call --phone +4930123456\n  \
        mfa-proxy user set alice --email alice@example.org\n  \
        echo 4711 | mfa-proxy user set alice --pin-stdin\n  \
        mfa-proxy user set alice --groups vpn,admins")]
    Set {
        /// The user's name.
        name: String,
        /// push, call, sms or totp.
        #[arg(long)]
        method: Option<String>,
        /// The user's email address (enrollment invitations go there); "" removes it.
        #[arg(long)]
        email: Option<String>,
        /// + and the country code; "" removes it.
        #[arg(long)]
        phone: Option<String>,
        /// Read the call PIN (4 to 8 digits) from standard input; an empty line removes it.
        #[arg(long)]
        pin_stdin: bool,
        /// The language of the user's prompts, calls and texts ([messages.LANG]); "" for the default.
        #[arg(long)]
        language: Option<String>,
        /// The groups the user is in, separated by commas, replacing those
        /// set before; "" for none.
        #[arg(long)]
        groups: Option<String>,
    },
    /// List the users with their email, phone and methods.
    #[command(after_help = "Example:\n  mfa-proxy user list --config /etc/mfa-proxy/proxy.toml")]
    List,
    /// Show one user: methods, tokens, groups, block, lockout and remembered logins.
    #[command(after_help = "Example:\n  mfa-proxy user show alice")]
    Show {
        /// The user's name.
        name: String,
    },
    /// Remove a user with the user's tokens, groups and remembered logins.
    #[command(after_help = "Example:\n  mfa-proxy user remove alice")]
    Remove {
        /// The user's name.
        name: String,
    },
    /// Let a user enroll at the portal with the first factor alone, for a
    /// while (when no invitation mail can reach them).
    ///
    /// Until the window closes, signing in at `{public_url}/portal/` with the
    /// password is enough to set up an authenticator app or a phone; `--for
    /// 0s` closes it at once.
    #[command(after_help = "Example:\n  mfa-proxy user open-enrollment alice --for 24h")]
    OpenEnrollment {
        /// The user's name.
        name: String,
        /// How long the window stays open (1 minute to 30 days).
        #[arg(long = "for", default_value = "24h")]
        duration: String,
    },
    /// Revoke every remembered login of a user.
    ///
    /// The user's next login asks for the second factor again, wherever it
    /// comes from. Prints how many were revoked.
    #[command(after_help = "Example:\n  mfa-proxy user forget alice")]
    Forget {
        /// The user's name.
        name: String,
    },
    /// Mail users an invitation to enroll, with a single-use link.
    ///
    /// Each user gets the [enrollment] template of their method (app, push,
    /// call, SMS, or a call with a PIN) in their language. The link,
    /// {public_url}/portal/invite/TOKEN, works once until [enrollment]
    /// invite_valid; inviting a user again replaces it. The store keeps
    /// the invitation before the mail leaves. One line per user; the exit
    /// status is 1 if any user was not invited.
    #[command(after_help = "Examples:\n  \
        mfa-proxy user invite alice bob\n  \
        mfa-proxy user invite --all-pending")]
    #[command(group = clap::ArgGroup::new("who").required(true).multiple(false))]
    Invite {
        /// The users' names.
        #[arg(group = "who")]
        names: Vec<String>,
        /// Every user not disabled, with an email address, no active token
        /// (app or hardware) yet and no invitation still open; call and
        /// SMS users, who need no token, once only.
        #[arg(long, group = "who")]
        all_pending: bool,
    },
    /// Import users from CSV with the header name,email,phone.
    ///
    /// Email and phone may be empty; fields may be quoted. Good rows are
    /// imported; bad ones are written with the reason to FILE.errors.csv.
    #[command(after_help = "Example:\n  mfa-proxy user import users.csv")]
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCmd {
    /// Make a new secret and show it as an otpauth:// URI and QR code.
    ///
    /// The secret is pending (and replaces a pending one) until `totp
    /// activate` sees the code the app shows.
    #[command(after_help = "Example:\n  mfa-proxy totp enroll alice --svg alice.svg")]
    Enroll {
        /// The user's name.
        name: String,
        /// Also write the QR code to this SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Activate the pending secret with the code the app shows.
    #[command(after_help = "Example:\n  mfa-proxy totp activate alice 123456")]
    Activate {
        /// The user's name.
        name: String,
        /// The code the app shows now.
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCmd {
    /// Sync the sources now and print what is added, changed, enabled,
    /// disabled and removed, one line each, then a summary per source.
    ///
    /// `serve` syncs at start and every `interval` by itself. A source that
    /// cannot be read whole changes nothing; neither does one whose sync
    /// would disable more than its `max_disable` (or everyone) unless
    /// --force is given.
    #[command(after_help = "Examples:\n  \
        mfa-proxy directory sync --dry-run\n  \
        mfa-proxy directory sync corp --force")]
    Sync {
        /// Only this source (default: every one, in file order).
        name: Option<String>,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even a sync that disables more than max_disable.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Import tokens from the vendor's CSV or PSKC (RFC 6030) file.
    ///
    /// The CSV header is `upn,serial number,secret key,time interval,manufacturer,model[,digits]`.
    /// A time interval of 30 or 60 is a TOTP token; 0 or empty, an HOTP
    /// (event) token. A file named *.pskc or *.xml, or starting with `<`, is
    /// PSKC: HOTP and TOTP keys, plain or encrypted (AES-CBC under a
    /// PBKDF2 password or a pre-shared key, with a MAC), each with its
    /// <UserId>. Missing users are added. Bad entries are written with the
    /// reason, never the secret, to FILE.errors.csv.
    #[command(after_help = "Examples:\n  \
        mfa-proxy token import tokens.csv --secret-format hex\n  \
        mfa-proxy token import tokens.pskc --password-file vendor.pass\n  \
        VENDOR_PASS=... mfa-proxy token import tokens.pskc --password-env VENDOR_PASS")]
    #[command(group = clap::ArgGroup::new("pskc_key").multiple(false))]
    Import {
        /// The CSV or PSKC file.
        file: PathBuf,
        /// How the secret key column of a CSV is written.
        #[arg(long, value_enum, default_value_t = SecretFormatArg::Base32)]
        secret_format: SecretFormatArg,
        /// PSKC: a file holding the password the file is encrypted with.
        #[arg(long, group = "pskc_key")]
        password_file: Option<PathBuf>,
        /// PSKC: an environment variable holding the password.
        #[arg(long, group = "pskc_key")]
        password_env: Option<String>,
        /// PSKC: a file holding the pre-shared AES key, in hex.
        #[arg(long, group = "pskc_key")]
        key_file: Option<PathBuf>,
        /// PSKC: an environment variable holding the pre-shared key, in hex.
        #[arg(long, group = "pskc_key")]
        key_env: Option<String>,
        /// PSKC: a CSV `serial number,upn` naming the user of each token
        /// whose key package names none (vendor files rarely do).
        #[arg(long)]
        user_map: Option<PathBuf>,
    },
    /// Activate an imported token with the code it shows now.
    #[command(after_help = "Example:\n  mfa-proxy token activate 1234567 287082")]
    Activate {
        /// The token's serial number.
        serial: String,
        /// The code it shows now.
        code: String,
    },
    /// Resynchronise a user's HOTP token from two consecutive codes.
    ///
    /// For a token pressed too often away from a login: its counter moves
    /// past the two codes.
    #[command(after_help = "Example:\n  mfa-proxy token resync alice 162583 399871")]
    Resync {
        /// The user's name.
        name: String,
        /// A code the token shows.
        first: String,
        /// The code it shows on the next press.
        second: String,
    },
    /// Remove the token with this serial number (lost or returned).
    #[command(after_help = "Example:\n  mfa-proxy token remove 1234567")]
    Remove {
        /// The token's serial number.
        serial: String,
    },
}

/// How the secret key column of a token file is written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SecretFormatArg {
    Base32,
    Hex,
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Every recorded login, with its result code.
    #[command(after_help = "Example:\n  mfa-proxy report signins --user alice --since 24h")]
    Signins {
        /// Only this user's logins.
        #[arg(long)]
        user: Option<String>,
        /// A time (RFC 3339) or how long ago, e.g. "24h".
        #[arg(long)]
        since: Option<String>,
    },
    /// Block and unblock history.
    #[command(after_help = "Example:\n  mfa-proxy report blocked --format csv")]
    Blocked,
    /// Bypasses granted and used.
    #[command(after_help = "Example:\n  mfa-proxy report bypassed")]
    Bypassed,
    /// Users registered for MFA and not, with their methods.
    #[command(after_help = "Example:\n  mfa-proxy report users --format json")]
    Users,
    /// The nodes serving on the store (several on PostgreSQL): up or
    /// silent, their version, and the verifications each holds now.
    #[command(after_help = "Example:\n  mfa-proxy report status")]
    Status,
}

/// How a report is written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// How `serve` writes its log.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
