//! The server's configuration: one TOML file, then `PADDOCK_*` environment variables
//! over it, then defaults. Unknown keys are refused, naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oidc::IdentityProviderConfig;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen (`PADDOCK_LISTEN`); default 127.0.0.1:8080.
    pub listen: Option<SocketAddr>,
    /// The URL people reach this server at (`PADDOCK_PUBLIC_URL`), for sign-in links and
    /// identity providers' redirects; default `http://<listen>`.
    pub public_url: Option<String>,
    /// The data directory (`PADDOCK_DATA`); default `./paddock-data`.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` (`PADDOCK_DATABASE_URL`); default
    /// `DATA/paddock.db`.
    pub database_url: Option<String>,
    #[serde(default)]
    pub key: KeyConfig,
    #[serde(default)]
    pub workers: WorkerConfig,
    #[serde(default)]
    pub cloud: CloudConfig,
    /// Identity providers people sign in with (OpenID Connect or GitHub).
    #[serde(default)]
    pub identity_providers: Vec<IdentityProviderConfig>,
    /// Allow local accounts with passwords (`PADDOCK_LOCAL_ACCOUNTS`); default true.
    pub local_accounts: Option<bool>,
    /// Largest request body accepted, in bytes; default 64 KiB.
    pub max_body_bytes: Option<usize>,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Who runs this server (`PADDOCK_OPERATOR`): the person the audit log names for what
    /// `serve` changes on its own at start (the platform's stack); default the account it
    /// runs as (`os:USER`).
    pub operator: Option<String>,
}

/// Day two: environments' expiry and the scheduled drift refresh. Spans are written as
/// `90d`, `24h`, `30m`, `2s`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// The longest expiry a request may set, from now (`PADDOCK_MAX_TTL`); default `90d`.
    pub max_ttl: Option<String>,
    /// How long before its expiry an environment shows as expiring and the warning is
    /// given (`PADDOCK_EXPIRY_WARNING`); default `24h`.
    pub expiry_warning: Option<String>,
    /// How often every standing environment is refreshed to find drift
    /// (`PADDOCK_DRIFT_INTERVAL`); default `6h`, `0` turns it off.
    pub drift_interval: Option<String>,
    /// Scheduled refreshes queued or running at once, over all replicas, so the clouds'
    /// rate limits hold (`PADDOCK_DRIFT_IN_FLIGHT`); default 4.
    pub drift_in_flight: Option<usize>,
    /// How often the reaper and the drift scheduler look for what is due, in
    /// milliseconds; default 10 000.
    pub tick_ms: Option<u64>,
}

/// A span such as `7d`, `12h`, `30m` or `2s` (humantime's units).
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a span like `7d`, `12h` or `30m`: {e}"))
}

/// Where the master key that wraps every stack's data key comes from.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// `file` (the default: a local key file).
    pub provider: Option<String>,
    /// The key ring file (`PADDOCK_KEY_FILE`; a single-key file is read too); default
    /// `DATA/master.key`. See `paddock key` and docs/operations.md, Key rotation.
    pub path: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Operations this replica runs at once (`PADDOCK_WORKERS`); default 4.
    pub count: Option<usize>,
    /// How long a claimed operation's lease lasts without a heartbeat
    /// (`PADDOCK_LEASE_SECONDS`); default 30.
    pub lease_seconds: Option<u64>,
    /// How often an idle worker looks for work, in milliseconds; default 500.
    pub poll_ms: Option<u64>,
}

/// Which clouds environments are provisioned in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// `sandbox` (the default: an in-process sandbox cloud under `DATA/sandbox`),
    /// `sandbox-env` (a running sandbox whose `sandbox.env` is `sandbox_env`), or `real`
    /// (`PADDOCK_GITHUB_*`, `PADDOCK_AZURE_*`, `PADDOCK_KUBECONFIG`). `PADDOCK_CLOUD`.
    pub target: Option<String>,
    /// `PADDOCK_SANDBOX_ENV`.
    pub sandbox_env: Option<PathBuf>,
    /// The in-process sandbox's addresses: its APIs over HTTP and HTTPS, and its control
    /// API (`PADDOCK_SANDBOX_LISTEN`, `PADDOCK_SANDBOX_HTTPS_LISTEN`,
    /// `PADDOCK_SANDBOX_CONTROL_LISTEN`). Default: loopback, on ports chosen at the first
    /// start and kept in `DATA/sandbox/addresses.json`, so that the URLs environments hold
    /// stay valid across restarts.
    pub sandbox_listen: Option<SocketAddr>,
    pub sandbox_https_listen: Option<SocketAddr>,
    pub sandbox_control_listen: Option<SocketAddr>,
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("{var}: {message}")]
    Var { var: &'static str, message: String },
}

impl Config {
    /// Reads `file` (if any), then applies the variables `env` returns.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        fn parse<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e: T::Err| ConfigError::Var {
                var,
                message: format!("`{v}`: {e}"),
            })
        }
        let get = |var: &str| env(var).filter(|v| !v.is_empty());
        if let Some(v) = get("PADDOCK_LISTEN") {
            config.listen = Some(parse("PADDOCK_LISTEN", &v)?);
        }
        if let Some(v) = get("PADDOCK_PUBLIC_URL") {
            config.public_url = Some(v);
        }
        if let Some(v) = get("PADDOCK_DATA") {
            config.data_dir = Some(v.into());
        }
        if let Some(v) = get("PADDOCK_DATABASE_URL") {
            config.database_url = Some(v);
        }
        if let Some(v) = get("PADDOCK_KEY_FILE") {
            config.key.path = Some(v.into());
        }
        if let Some(v) = get("PADDOCK_WORKERS") {
            config.workers.count = Some(parse("PADDOCK_WORKERS", &v)?);
        }
        if let Some(v) = get("PADDOCK_LEASE_SECONDS") {
            config.workers.lease_seconds = Some(parse("PADDOCK_LEASE_SECONDS", &v)?);
        }
        if let Some(v) = get("PADDOCK_CLOUD") {
            config.cloud.target = Some(v);
        }
        if let Some(v) = get("PADDOCK_SANDBOX_ENV") {
            config.cloud.sandbox_env = Some(v.into());
            config
                .cloud
                .target
                .get_or_insert_with(|| "sandbox-env".into());
        }
        for (var, slot) in [
            ("PADDOCK_SANDBOX_LISTEN", &mut config.cloud.sandbox_listen),
            (
                "PADDOCK_SANDBOX_HTTPS_LISTEN",
                &mut config.cloud.sandbox_https_listen,
            ),
            (
                "PADDOCK_SANDBOX_CONTROL_LISTEN",
                &mut config.cloud.sandbox_control_listen,
            ),
        ] {
            if let Some(v) = get(var) {
                *slot = Some(parse(var, &v)?);
            }
        }
        for (var, slot) in [
            ("PADDOCK_MAX_TTL", &mut config.lifecycle.max_ttl),
            (
                "PADDOCK_EXPIRY_WARNING",
                &mut config.lifecycle.expiry_warning,
            ),
            (
                "PADDOCK_DRIFT_INTERVAL",
                &mut config.lifecycle.drift_interval,
            ),
        ] {
            if let Some(v) = get(var) {
                *slot = Some(v);
            }
        }
        if let Some(v) = get("PADDOCK_DRIFT_IN_FLIGHT") {
            config.lifecycle.drift_in_flight = Some(parse("PADDOCK_DRIFT_IN_FLIGHT", &v)?);
        }
        for (key, value) in [
            ("lifecycle.max_ttl", &config.lifecycle.max_ttl),
            ("lifecycle.expiry_warning", &config.lifecycle.expiry_warning),
            ("lifecycle.drift_interval", &config.lifecycle.drift_interval),
        ] {
            if let Some(v) = value {
                parse_span(v).map_err(|message| ConfigError::Var { var: key, message })?;
            }
        }
        if let Some(v) = get("PADDOCK_OPERATOR") {
            config.operator = Some(v);
        }
        if let Some(v) = get("PADDOCK_LOCAL_ACCOUNTS") {
            config.local_accounts = Some(parse("PADDOCK_LOCAL_ACCOUNTS", &v)?);
        }
        if let Some(provider) = &config.key.provider
            && provider != "file"
        {
            return Err(ConfigError::Var {
                var: "key.provider",
                message: format!("`{provider}` is not a key provider; the one available is `file`"),
            });
        }
        Ok(config)
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("paddock-data"))
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir().join("paddock.db").display()))
    }

    pub fn key_file(&self) -> PathBuf {
        self.key
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir().join("master.key"))
    }

    pub fn workers(&self) -> usize {
        self.workers.count.unwrap_or(4)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.workers.lease_seconds.unwrap_or(30).max(1))
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.workers.poll_ms.unwrap_or(500).max(10))
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.unwrap_or(64 * 1024)
    }

    pub fn local_accounts(&self) -> bool {
        self.local_accounts.unwrap_or(true)
    }

    /// The person `serve`'s own changes are recorded as theirs: `operator`, else the
    /// operating-system account the server runs as.
    pub fn operator(&self) -> String {
        if let Some(op) = self
            .operator
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            return op.to_owned();
        }
        let account = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .or_else(|| {
                let status = std::fs::read_to_string("/proc/self/status").ok()?;
                let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
                Some(format!("uid {}", uid.split_whitespace().next()?))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        format!("os:{account}")
    }

    /// Spans were checked at load; a bad one here (set in code) falls back to the default.
    fn span(value: &Option<String>, default: Duration) -> Duration {
        value
            .as_deref()
            .and_then(|v| parse_span(v).ok())
            .unwrap_or(default)
    }

    pub fn max_ttl(&self) -> Duration {
        Config::span(&self.lifecycle.max_ttl, Duration::from_secs(90 * 86_400))
    }

    pub fn expiry_warning(&self) -> Duration {
        Config::span(&self.lifecycle.expiry_warning, Duration::from_secs(86_400))
    }

    /// `None` when the scheduled refresh is off.
    pub fn drift_interval(&self) -> Option<Duration> {
        Some(Config::span(
            &self.lifecycle.drift_interval,
            Duration::from_secs(6 * 3600),
        ))
        .filter(|d| !d.is_zero())
    }

    pub fn drift_in_flight(&self) -> usize {
        self.lifecycle.drift_in_flight.unwrap_or(4).max(1)
    }

    pub fn lifecycle_tick(&self) -> Duration {
        Duration::from_millis(self.lifecycle.tick_ms.unwrap_or(10_000).max(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_the_file_and_bad_values_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("paddock.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://x.db\"\n[workers]\ncount = 2\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), |v| {
            (v == "PADDOCK_WORKERS").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(config.listen().port(), 9000);
        assert_eq!(config.workers(), 7);
        assert_eq!(config.database_url(), "sqlite://x.db");

        let err = Config::load(None, |v| {
            (v == "PADDOCK_LEASE_SECONDS").then(|| "soon".into())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PADDOCK_LEASE_SECONDS: `soon`: invalid digit found in string"
        );
        std::fs::write(&file, "listen_adress = \"x\"\n").unwrap();
        let err = Config::load(Some(&file), |_| None).unwrap_err().to_string();
        assert!(err.contains("unknown field `listen_adress`"), "{err}");
    }
}
