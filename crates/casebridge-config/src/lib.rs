//! Typed configuration for casebridge (SPEC §9a, P7).
//!
//! Settings come from built-in defaults, then an optional TOML file, then `CASEBRIDGE_*`
//! environment variables, each layer overriding the one before. Everything is validated once, at
//! start, so a typo stops the process with a message naming the setting (in both its environment
//! and its TOML spelling) instead of surfacing later as a confusing runtime failure.
//!
//! Secrets (master keys) are held as [`SecretString`] so they never appear in `Debug` output, and
//! the password in a database URL is redacted there too.

mod de;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format as _, Toml};
use figment::Figment;
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// Validated configuration. Build it with [`Config::load`] (or [`Config::from_figment`] in tests).
#[derive(Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Where the SQLite database, the generated master key and local files live.
    pub data_dir: PathBuf,
    /// `None` means SQLite in `data_dir`; see [`Config::effective_database_url`].
    pub database_url: Option<String>,
    /// Base64 master key; `None` means the key file at [`Config::master_key_path`] is used (and
    /// generated on first start). Only checked for being non-empty here: decoding belongs to
    /// casebridge-crypto, which reports a precise error.
    pub master_key: Option<SecretString>,
    /// Previous master keys, kept only to open secrets sealed before a rotation.
    pub old_master_keys: Vec<SecretString>,
    /// Base of the inbound webhook URLs shown to admins, without a trailing `/`.
    pub public_url: Option<String>,
    /// Private networks that outbound calls may reach despite the SSRF guard (development and
    /// tests); empty by default.
    pub allow_private_networks: Vec<IpNet>,
    /// Permit plain-http outbound targets (development and tests only).
    pub allow_http: bool,
    pub log_format: LogFormat,
    /// A `tracing` env-filter directive, e.g. `info,casebridge=debug`.
    pub log_filter: String,
    pub body_limit_bytes: usize,
    pub db_max_connections: u32,
    pub worker_concurrency: usize,
    pub job_lease_secs: u64,
    pub shutdown_grace_secs: u64,
    /// CASEBRIDGE_WEBHOOK_LOG_RETENTION_DAYS, default 30: webhook attempts and finished deliveries
    /// older than this are pruned (W9).
    pub webhook_log_retention_days: u32,
    /// CASEBRIDGE_SCHEDULING_URL, default `https://api.cal.com`: base URL of the Cal.com-compatible
    /// scheduling API (point it at `casebridge sim scheduling` to try things out).
    pub scheduling_url: String,
    /// CASEBRIDGE_LAWRULER_REQUESTS_PER_MINUTE, default 120: the per-connection limit on calls to
    /// Law Ruler (LR15); 0 turns the limiter off.
    pub lawruler_requests_per_minute: u32,
    /// CASEBRIDGE_SMARTADVOCATE_REQUESTS_PER_MINUTE, default 60: the per-connection limit on
    /// calls to SmartAdvocate (which publishes none, so the default is conservative); 0 turns
    /// the limiter off.
    pub smartadvocate_requests_per_minute: u32,
    /// CASEBRIDGE_LAWRULER_PULL_INTERVAL_SECS, default 3600: how often notes and changed leads
    /// are pulled from Law Ruler (LR13).
    pub lawruler_pull_interval_secs: u64,
    /// CASEBRIDGE_SMARTADVOCATE_PULL_INTERVAL_SECS, default 3600: how often cases, contacts
    /// and notes changed in SmartAdvocate are pulled (SA4).
    pub smartadvocate_pull_interval_secs: u64,
    /// `[lawruler_paths]` (CASEBRIDGE_LAWRULER_PATHS): corrections to the modelled Law Ruler
    /// endpoint paths, by name (`token`, `notes`, …); unset names keep their defaults.
    pub lawruler_paths: BTreeMap<String, String>,
    /// `[smartadvocate_paths]` (CASEBRIDGE_SMARTADVOCATE_PATHS): corrections to the modelled
    /// SmartAdvocate CaseSyncAPI paths, by name (`case_types`, `udfs`, …); unset names keep
    /// their defaults.
    pub smartadvocate_paths: BTreeMap<String, String>,
    /// CASEBRIDGE_OBJECT_STORE_URL: where file bytes (documents, recordings) are kept; unset
    /// means the folder `{data_dir}/files`. `file:///absolute/path` or `s3://bucket[/prefix]`.
    pub object_store_url: Option<String>,
    /// CASEBRIDGE_OBJECT_STORE_REGION: the S3 region (default `AWS_REGION`, else `us-east-1`).
    pub object_store_region: Option<String>,
    /// CASEBRIDGE_OBJECT_STORE_ENDPOINT: an S3-compatible endpoint (MinIO, moto, R2, …);
    /// unset means AWS. An `http://` endpoint is spoken to over plain HTTP.
    pub object_store_endpoint: Option<String>,
    /// CASEBRIDGE_OBJECT_STORE_ACCESS_KEY_ID and CASEBRIDGE_OBJECT_STORE_SECRET_ACCESS_KEY: S3
    /// credentials (default: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the instance role).
    pub object_store_access_key_id: Option<String>,
    pub object_store_secret_access_key: Option<SecretString>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (production), pretty otherwise. The binary decides,
    /// because only it knows where logs go.
    #[default]
    Auto,
    Json,
    Pretty,
}

/// Why the configuration could not be loaded. Messages name the setting as both the environment
/// variable and the TOML key, so the operator can fix it wherever it was set, and never echo a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file was asked for explicitly, so silently running on defaults would be wrong.
    #[error("config file {} does not exist", .0.display())]
    FileNotFound(PathBuf),
    #[error("config file {}: {source}", path.display())]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A setting has a value that cannot be used.
    #[error("{env} ({key}): {message}")]
    Invalid {
        env: &'static str,
        key: &'static str,
        message: String,
    },
    /// The TOML file contains a key casebridge does not know, most likely a typo that would
    /// otherwise be ignored silently.
    #[error(
        "unknown setting `{key}` in {origin}; known settings: {}",
        known_keys()
    )]
    UnknownKey { key: String, origin: String },
    /// Anything else reported while reading the sources, e.g. TOML syntax errors (with file and
    /// line).
    #[error("{0}")]
    Load(String),
}

/// One setting: its TOML key (also the field name) and its environment variable.
struct Setting {
    key: &'static str,
    env: &'static str,
    secret: bool,
}

const fn setting(key: &'static str, env: &'static str) -> Setting {
    Setting {
        key,
        env,
        secret: false,
    }
}

/// Every setting, in documentation order. The environment provider is limited to these, so
/// unrelated `CASEBRIDGE_*` variables (e.g. `CASEBRIDGE_TEST_POSTGRES_URL` used by the test suite)
/// are ignored rather than rejected as unknown.
const SETTINGS: &[Setting] = &[
    setting("listen", "CASEBRIDGE_LISTEN"),
    setting("data_dir", "CASEBRIDGE_DATA_DIR"),
    setting("database_url", "CASEBRIDGE_DATABASE_URL"),
    Setting {
        key: "master_key",
        env: "CASEBRIDGE_MASTER_KEY",
        secret: true,
    },
    Setting {
        key: "old_master_keys",
        env: "CASEBRIDGE_OLD_MASTER_KEYS",
        secret: true,
    },
    setting("public_url", "CASEBRIDGE_PUBLIC_URL"),
    setting(
        "allow_private_networks",
        "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS",
    ),
    setting("allow_http", "CASEBRIDGE_ALLOW_HTTP"),
    setting("log_format", "CASEBRIDGE_LOG_FORMAT"),
    // `RUST_LOG`-style naming: the variable is CASEBRIDGE_LOG, the TOML key says what it holds.
    setting("log_filter", "CASEBRIDGE_LOG"),
    setting("body_limit_bytes", "CASEBRIDGE_BODY_LIMIT_BYTES"),
    setting("db_max_connections", "CASEBRIDGE_DB_MAX_CONNECTIONS"),
    setting("worker_concurrency", "CASEBRIDGE_WORKER_CONCURRENCY"),
    setting("job_lease_secs", "CASEBRIDGE_JOB_LEASE_SECS"),
    setting("shutdown_grace_secs", "CASEBRIDGE_SHUTDOWN_GRACE_SECS"),
    setting(
        "webhook_log_retention_days",
        "CASEBRIDGE_WEBHOOK_LOG_RETENTION_DAYS",
    ),
    setting("scheduling_url", "CASEBRIDGE_SCHEDULING_URL"),
    setting(
        "lawruler_requests_per_minute",
        "CASEBRIDGE_LAWRULER_REQUESTS_PER_MINUTE",
    ),
    setting(
        "smartadvocate_requests_per_minute",
        "CASEBRIDGE_SMARTADVOCATE_REQUESTS_PER_MINUTE",
    ),
    setting(
        "lawruler_pull_interval_secs",
        "CASEBRIDGE_LAWRULER_PULL_INTERVAL_SECS",
    ),
    setting(
        "smartadvocate_pull_interval_secs",
        "CASEBRIDGE_SMARTADVOCATE_PULL_INTERVAL_SECS",
    ),
    setting("lawruler_paths", "CASEBRIDGE_LAWRULER_PATHS"),
    setting("smartadvocate_paths", "CASEBRIDGE_SMARTADVOCATE_PATHS"),
    setting("object_store_url", "CASEBRIDGE_OBJECT_STORE_URL"),
    setting("object_store_region", "CASEBRIDGE_OBJECT_STORE_REGION"),
    setting("object_store_endpoint", "CASEBRIDGE_OBJECT_STORE_ENDPOINT"),
    setting(
        "object_store_access_key_id",
        "CASEBRIDGE_OBJECT_STORE_ACCESS_KEY_ID",
    ),
    Setting {
        key: "object_store_secret_access_key",
        env: "CASEBRIDGE_OBJECT_STORE_SECRET_ACCESS_KEY",
        secret: true,
    },
];

const ENV_PREFIX: &str = "CASEBRIDGE_";

fn find_setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

fn known_keys() -> String {
    SETTINGS
        .iter()
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings exactly as read, before validation. Strings stay strings here so that validation
/// can say what is wrong in our words rather than serde's.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    #[serde(deserialize_with = "de::string")]
    listen: String,
    #[serde(deserialize_with = "de::string")]
    data_dir: PathBuf,
    #[serde(deserialize_with = "de::opt_string")]
    database_url: Option<String>,
    #[serde(deserialize_with = "de::opt_string")]
    master_key: Option<SecretString>,
    #[serde(deserialize_with = "de::list")]
    old_master_keys: Vec<SecretString>,
    #[serde(deserialize_with = "de::opt_string")]
    public_url: Option<String>,
    #[serde(deserialize_with = "de::list")]
    allow_private_networks: Vec<String>,
    allow_http: bool,
    #[serde(deserialize_with = "de::string")]
    log_format: String,
    #[serde(deserialize_with = "de::string")]
    log_filter: String,
    body_limit_bytes: usize,
    db_max_connections: u32,
    worker_concurrency: usize,
    job_lease_secs: u64,
    shutdown_grace_secs: u64,
    webhook_log_retention_days: u32,
    #[serde(deserialize_with = "de::string")]
    scheduling_url: String,
    lawruler_requests_per_minute: u32,
    smartadvocate_requests_per_minute: u32,
    lawruler_pull_interval_secs: u64,
    smartadvocate_pull_interval_secs: u64,
    lawruler_paths: BTreeMap<String, String>,
    smartadvocate_paths: BTreeMap<String, String>,
    #[serde(deserialize_with = "de::opt_string")]
    object_store_url: Option<String>,
    #[serde(deserialize_with = "de::opt_string")]
    object_store_region: Option<String>,
    #[serde(deserialize_with = "de::opt_string")]
    object_store_endpoint: Option<String>,
    #[serde(deserialize_with = "de::opt_string")]
    object_store_access_key_id: Option<String>,
    #[serde(deserialize_with = "de::opt_string")]
    object_store_secret_access_key: Option<SecretString>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            master_key: None,
            old_master_keys: Vec::new(),
            public_url: None,
            allow_private_networks: Vec::new(),
            allow_http: false,
            log_format: "auto".into(),
            log_filter: "info".into(),
            body_limit_bytes: 1_048_576,
            db_max_connections: 16,
            worker_concurrency: 16,
            job_lease_secs: 60,
            shutdown_grace_secs: 20,
            webhook_log_retention_days: 30,
            scheduling_url: "https://api.cal.com".into(),
            lawruler_requests_per_minute: 120,
            smartadvocate_requests_per_minute: 60,
            lawruler_pull_interval_secs: 3600,
            smartadvocate_pull_interval_secs: 3600,
            lawruler_paths: BTreeMap::new(),
            smartadvocate_paths: BTreeMap::new(),
            object_store_url: None,
            object_store_region: None,
            object_store_endpoint: None,
            object_store_access_key_id: None,
            object_store_secret_access_key: None,
        }
    }
}

impl Config {
    /// Loads defaults, then the TOML file if given (a missing file given explicitly is an error
    /// naming the path), then `CASEBRIDGE_*` environment variables; then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            match std::fs::metadata(path) {
                Ok(metadata) if metadata.is_dir() => {
                    return Err(ConfigError::FileUnreadable {
                        path: path.to_owned(),
                        source: std::io::ErrorKind::IsADirectory.into(),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ConfigError::FileNotFound(path.to_owned()));
                }
                Err(source) => {
                    return Err(ConfigError::FileUnreadable {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
            // `file_exact`: `Toml::file` would also search parent directories for a relative path.
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(figment.merge(env_provider()))
    }

    /// Same as [`Config::load`] but from an explicit figment (for tests). Keys are the TOML keys;
    /// anything not provided takes its default.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        // Lossy: lets `CASEBRIDGE_ALLOW_HTTP=1` or `yes` mean true, as operators expect.
        let raw: RawConfig = figment.extract_lossy().map_err(from_figment_error)?;
        validate(raw, &figment)
    }

    /// The database URL to connect to: `database_url`, or a SQLite file in `data_dir`
    /// (`sqlite://{data_dir}/casebridge.db?mode=rwc`, created if missing).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("casebridge.db");
                // sqlx percent-decodes the path, so escape what it would otherwise misread.
                let path = path
                    .to_string_lossy()
                    .replace('%', "%25")
                    .replace('?', "%3F")
                    .replace('#', "%23");
                format!("sqlite://{path}?mode=rwc")
            }
        }
    }

    /// [`Config::effective_database_url`] with any password replaced by `***`, for log lines.
    pub fn effective_database_url_redacted(&self) -> String {
        redact_url(&self.effective_database_url())
    }

    /// The base of the inbound webhook URLs shown to admins: `public_url`, or else the address
    /// the server is bound to (`bound`, which knows the port when `listen` asked for port 0). An
    /// unspecified address (`0.0.0.0`, `::`) becomes the loopback address of its family.
    pub fn public_url_or(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let ip = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, bound.port()))
    }

    /// Where the master key is read from, or generated on first start, when `master_key` is not
    /// set.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written out rather than derived so the database password cannot reach a log line.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("master_key", &self.master_key)
            .field("old_master_keys", &self.old_master_keys)
            .field("public_url", &self.public_url)
            .field("allow_private_networks", &self.allow_private_networks)
            .field("allow_http", &self.allow_http)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("db_max_connections", &self.db_max_connections)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("job_lease_secs", &self.job_lease_secs)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field(
                "webhook_log_retention_days",
                &self.webhook_log_retention_days,
            )
            .field("scheduling_url", &self.scheduling_url)
            .field(
                "lawruler_requests_per_minute",
                &self.lawruler_requests_per_minute,
            )
            .field(
                "smartadvocate_requests_per_minute",
                &self.smartadvocate_requests_per_minute,
            )
            .field(
                "lawruler_pull_interval_secs",
                &self.lawruler_pull_interval_secs,
            )
            .field(
                "smartadvocate_pull_interval_secs",
                &self.smartadvocate_pull_interval_secs,
            )
            .field("lawruler_paths", &self.lawruler_paths)
            .field("smartadvocate_paths", &self.smartadvocate_paths)
            .field("object_store_url", &self.object_store_url)
            .field("object_store_region", &self.object_store_region)
            .field("object_store_endpoint", &self.object_store_endpoint)
            .field(
                "object_store_access_key_id",
                &self.object_store_access_key_id,
            )
            .field(
                "object_store_secret_access_key",
                &self.object_store_secret_access_key,
            )
            .finish()
    }
}

fn env_provider() -> Env {
    let names: Vec<String> = SETTINGS
        .iter()
        .map(|s| s.env[ENV_PREFIX.len()..].to_ascii_lowercase())
        .collect();
    let only: Vec<&str> = names.iter().map(String::as_str).collect();
    Env::prefixed(ENV_PREFIX)
        .only(&only)
        // Map the variable name to the TOML key where they differ (CASEBRIDGE_LOG -> log_filter).
        .map(|name| {
            let key = SETTINGS
                .iter()
                .find(|s| s.env[ENV_PREFIX.len()..].eq_ignore_ascii_case(name.as_str()))
                .map_or(name.as_str(), |s| s.key);
            key.to_owned().into()
        })
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    let setting = find_setting(key).expect("validation only names known settings");
    ConfigError::Invalid {
        env: setting.env,
        key: setting.key,
        message: message.into(),
    }
}

fn from_figment_error(error: figment::Error) -> ConfigError {
    let setting = error.path.first().and_then(|key| find_setting(key));
    let origin = error
        .metadata
        .as_ref()
        .map(|md| describe_origin(md, setting))
        .unwrap_or_else(|| "the configuration".into());
    if let figment::error::Kind::UnknownField(key, _) = &error.kind {
        return ConfigError::UnknownKey {
            key: key.clone(),
            origin,
        };
    }
    match setting {
        Some(setting) => {
            let detail = if setting.secret {
                // figment's message may quote the offending value.
                "must be a string (value not shown: it is secret)".to_owned()
            } else {
                error.kind.to_string()
            };
            invalid(setting.key, format!("{detail} (from {origin})"))
        }
        None => ConfigError::Load(error.to_string()),
    }
}

/// Where a value came from, e.g. `TOML file /etc/casebridge.toml` or `environment variable
/// CASEBRIDGE_LISTEN` (figment itself only knows "`CASEBRIDGE_` environment variable(s)").
fn describe_origin(metadata: &figment::Metadata, setting: Option<&Setting>) -> String {
    if let Some(setting) = setting {
        if metadata.name.contains("environment variable") {
            return format!("environment variable {}", setting.env);
        }
    }
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

fn validate(raw: RawConfig, figment: &Figment) -> Result<Config, ConfigError> {
    // Points the operator at the layer to fix, since a value may come from the file or the env.
    let origin = |key: &str| {
        figment
            .find_metadata(key)
            .map(|md| format!(" (from {})", describe_origin(md, find_setting(key))))
            .unwrap_or_default()
    };

    let listen = raw.listen.trim().parse::<SocketAddr>().map_err(|_| {
        invalid(
            "listen",
            format!(
                "`{}` is not a socket address like 127.0.0.1:8080{}",
                raw.listen,
                origin("listen")
            ),
        )
    })?;

    let log_format = match raw.log_format.trim().to_ascii_lowercase().as_str() {
        "auto" => LogFormat::Auto,
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        _ => {
            return Err(invalid(
                "log_format",
                format!(
                    "`{}` is not one of auto, json, pretty{}",
                    raw.log_format,
                    origin("log_format")
                ),
            ));
        }
    };

    if raw.data_dir.as_os_str().is_empty() {
        return Err(invalid(
            "data_dir",
            format!("must not be empty{}", origin("data_dir")),
        ));
    }

    let database_url = match raw.database_url.as_deref().map(str::trim) {
        None => None,
        // An empty value usually means an unset variable in a deployment template; running on a
        // fresh SQLite file instead of the intended PostgreSQL would be a nasty surprise.
        Some("") => {
            return Err(invalid(
                "database_url",
                format!(
                    "is set but empty; unset it to use SQLite in the data directory{}",
                    origin("database_url")
                ),
            ));
        }
        Some(url) => {
            let supported = ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme));
            if !supported {
                return Err(invalid(
                    "database_url",
                    format!(
                        "`{}` is not supported; use sqlite:… (SQLite) or postgres://… / postgresql://… (PostgreSQL){}",
                        redact_url(url),
                        origin("database_url")
                    ),
                ));
            }
            Some(url.to_owned())
        }
    };

    // Same reasoning as for the database URL: an empty key must not silently fall back to (or
    // generate) the key file, or secrets end up sealed with a key the operator does not know.
    if let Some(key) = &raw.master_key {
        if key.expose_secret().trim().is_empty() {
            return Err(invalid(
                "master_key",
                format!(
                    "is set but empty; unset it to use the key file in the data directory{}",
                    origin("master_key")
                ),
            ));
        }
    }

    let public_url = match raw.public_url {
        None => None,
        Some(url) => {
            let trimmed = url.trim().trim_end_matches('/');
            let rest = trimmed
                .strip_prefix("https://")
                .or_else(|| trimmed.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() => Some(trimmed.to_owned()),
                _ => {
                    return Err(invalid(
                        "public_url",
                        format!(
                            "`{url}` must be an absolute URL starting with http:// or https://{}",
                            origin("public_url")
                        ),
                    ));
                }
            }
        }
    };

    let allow_private_networks = raw
        .allow_private_networks
        .iter()
        .map(|entry| {
            parse_network(entry).ok_or_else(|| {
                invalid(
                    "allow_private_networks",
                    format!(
                        "`{entry}` is not a CIDR network like 10.0.0.0/8 or fd00::/8{}",
                        origin("allow_private_networks")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let positive = |key: &'static str, value: u64| {
        if value == 0 {
            Err(invalid(
                key,
                format!("must be greater than 0{}", origin(key)),
            ))
        } else {
            Ok(())
        }
    };
    positive("body_limit_bytes", raw.body_limit_bytes as u64)?;
    positive("db_max_connections", u64::from(raw.db_max_connections))?;
    positive("worker_concurrency", raw.worker_concurrency as u64)?;
    positive("job_lease_secs", raw.job_lease_secs)?;
    let scheduling_url = raw.scheduling_url.trim().trim_end_matches('/').to_owned();
    if !(scheduling_url.starts_with("https://") || scheduling_url.starts_with("http://")) {
        return Err(invalid(
            "scheduling_url",
            format!(
                "`{scheduling_url}` must start with https:// or http://{}",
                origin("scheduling_url")
            ),
        ));
    }
    positive(
        "webhook_log_retention_days",
        u64::from(raw.webhook_log_retention_days),
    )?;

    let object_store_url = match raw.object_store_url.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            return Err(invalid(
                "object_store_url",
                format!(
                    "is set but empty; unset it to keep files in the data directory{}",
                    origin("object_store_url")
                ),
            ));
        }
        Some(url) => {
            let ok = url.starts_with("file:///")
                || url
                    .strip_prefix("s3://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                return Err(invalid(
                    "object_store_url",
                    format!(
                        "`{url}` is not supported; use file:///absolute/path or s3://bucket[/prefix]{}",
                        origin("object_store_url")
                    ),
                ));
            }
            Some(url.to_owned())
        }
    };
    if let Some(endpoint) = raw.object_store_endpoint.as_deref() {
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(invalid(
                "object_store_endpoint",
                format!(
                    "`{endpoint}` must start with https:// or http://{}",
                    origin("object_store_endpoint")
                ),
            ));
        }
    }

    Ok(Config {
        listen,
        data_dir: raw.data_dir,
        database_url,
        master_key: raw.master_key,
        old_master_keys: raw.old_master_keys,
        public_url,
        allow_private_networks,
        allow_http: raw.allow_http,
        log_format,
        log_filter: raw.log_filter,
        body_limit_bytes: raw.body_limit_bytes,
        db_max_connections: raw.db_max_connections,
        worker_concurrency: raw.worker_concurrency,
        job_lease_secs: raw.job_lease_secs,
        shutdown_grace_secs: raw.shutdown_grace_secs,
        webhook_log_retention_days: raw.webhook_log_retention_days,
        scheduling_url,
        lawruler_requests_per_minute: raw.lawruler_requests_per_minute,
        smartadvocate_requests_per_minute: raw.smartadvocate_requests_per_minute,
        lawruler_pull_interval_secs: pull_interval_secs(
            "lawruler_pull_interval_secs",
            raw.lawruler_pull_interval_secs,
            &origin("lawruler_pull_interval_secs"),
        )?,
        smartadvocate_pull_interval_secs: pull_interval_secs(
            "smartadvocate_pull_interval_secs",
            raw.smartadvocate_pull_interval_secs,
            &origin("smartadvocate_pull_interval_secs"),
        )?,
        lawruler_paths: raw.lawruler_paths,
        smartadvocate_paths: raw.smartadvocate_paths,
        object_store_url,
        object_store_region: raw.object_store_region,
        object_store_endpoint: raw.object_store_endpoint,
        object_store_access_key_id: raw.object_store_access_key_id,
        object_store_secret_access_key: raw.object_store_secret_access_key,
    })
}

fn pull_interval_secs(key: &'static str, secs: u64, origin: &str) -> Result<u64, ConfigError> {
    if secs < 60 {
        return Err(invalid(key, format!("must be at least 60 seconds{origin}")));
    }
    Ok(secs)
}

/// Parses a CIDR network; a bare address means just that host (/32 or /128). Host bits are
/// cleared, so `10.1.2.3/8` is read as `10.0.0.0/8`.
fn parse_network(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

/// Replaces the password in a URL's user info (`user:pass@`) and a `password=` query parameter
/// with `***`, so database URLs can be shown and logged.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];

    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..scheme_end]);
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(&authority[..at]),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }

    let rest = &url[authority_end..];
    let (before_fragment, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests;
