//! What the benchmarks that measure `paddock serve` share: the server started as a child
//! process of this binary (so its memory is its own, read from `/proc/PID/status`), its
//! first admin's token and a browser session, and scratch PostgreSQL databases.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long a start may take (the in-process sandbox, migrations, the bootstrap).
const START: Duration = Duration::from_secs(120);

/// Where a benchmark's server keeps its records.
#[derive(Clone, Debug)]
pub enum Database {
    /// The embedded default: `DATA/paddock.db`.
    Sqlite,
    /// A database on a PostgreSQL server.
    Postgres(String),
}

impl Database {
    pub fn label(&self) -> &'static str {
        match self {
            Database::Sqlite => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A scratch database on the PostgreSQL server `admin_url` names, dropped when this is.
pub struct Scratch(paddock_store::testing::TestDatabase);

impl Scratch {
    pub async fn create(admin_url: &str) -> anyhow::Result<Scratch> {
        let db = paddock_store::testing::TestDatabase::create(admin_url)
            .await
            .context("creating a scratch database on the PostgreSQL server")?;
        Ok(Scratch(db))
    }

    pub fn database(&self) -> Database {
        Database::Postgres(self.0.url().to_owned())
    }
}

/// Settings of a `paddock serve` child.
pub struct ServeOptions<'a> {
    pub data: &'a Path,
    pub database: &'a Database,
    /// Operations the server runs at once (`PADDOCK_WORKERS`; 0 runs none); `None`: its
    /// default.
    pub workers: Option<usize>,
}

/// `paddock serve` running as a child process; killed if dropped without `stop`.
pub struct ServeChild {
    child: Child,
    pub pid: u32,
    pub url: String,
    /// The first start's API token for the platform admin (the file the server wrote).
    pub token: String,
    /// The first start's one-time sign-in link, if this was the first start.
    pub sign_in_link: Option<String>,
}

impl ServeChild {
    pub async fn start(o: &ServeOptions<'_>) -> anyhow::Result<ServeChild> {
        std::fs::create_dir_all(o.data)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("serve")
            .arg("--data")
            .arg(o.data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--log-format")
            .arg("json");
        // Configured by these settings alone, whatever this process's environment says.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PADDOCK_") {
                cmd.env_remove(&k);
            }
        }
        if let Some(n) = o.workers {
            cmd.env("PADDOCK_WORKERS", n.to_string());
        }
        // No scheduled refresh competing with what is measured.
        cmd.env("PADDOCK_DRIFT_INTERVAL", "0");
        if let Database::Postgres(url) = o.database {
            cmd.env("PADDOCK_DATABASE_URL", url);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of this process. The
        // kernel kills the server if this process dies first.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("starting `paddock serve`")?;
        let pid = child.id().context("the server's pid")?;
        let log = o.data.join("serve.log");
        let mut lines = drain(child.stderr.take().context("stderr is piped")?, &log).await?;
        let (mut url, mut link) = (None, None);
        let deadline = Instant::now() + START;
        // The address, then on a first start the sign-in link, then the sandbox's line.
        loop {
            let line = tokio::time::timeout_at(deadline.into(), lines.recv())
                .await
                .ok()
                .flatten();
            let Some(line) = line else {
                anyhow::bail!(
                    "`paddock serve` did not start; its log ({}):\n{}",
                    log.display(),
                    tail(&log)
                );
            };
            let text = line.trim();
            if let Some(u) = text.strip_prefix("Paddock is serving at ") {
                url = Some(u.trim_end_matches('/').to_owned());
            } else if text.starts_with("http") && text.contains("/sign-in/link/") {
                link = Some(text.to_owned());
            } else if text.starts_with("The sandbox cloud runs in-process") {
                break;
            }
        }
        // The rest of its output goes to the log only.
        tokio::spawn(async move { while lines.recv().await.is_some() {} });
        let token = std::fs::read_to_string(o.data.join("initial-admin-token"))
            .context("the server's initial-admin-token")?
            .trim()
            .to_owned();
        Ok(ServeChild {
            child,
            pid,
            url: url.unwrap_or_default(),
            token,
            sign_in_link: link,
        })
    }

    /// The server process's peak resident memory so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        peak_rss_mib_of(&format!("/proc/{}/status", self.pid))
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        // SAFETY: a signal to our own child, which has not been reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `VmHWM` of a `/proc/…/status` file, in MiB.
pub fn peak_rss_mib_of(status: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(status).with_context(|| format!("reading {status}"))?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{status} has no VmHWM"))?;
    Ok(kb / 1024.0)
}

/// Copies the child's stderr into `log`, handing each line over too.
async fn drain(
    stderr: tokio::process::ChildStderr,
    log: &Path,
) -> anyhow::Result<mpsc::UnboundedReceiver<String>> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = file.write_all(line.as_bytes()).await;
            let _ = file.write_all(b"\n").await;
            let _ = tx.send(line);
        }
    });
    Ok(rx)
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// An HTTP client for the benchmarks: redirects shown as they are.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    // The shared client installs the TLS provider reqwest needs.
    let _ = paddock_providers::http::reqwest_client(None, None)?;
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?)
}

/// The size of the embedded database once its write-ahead log is folded in (with no
/// server running): the SQLite file with what is left of its WAL.
pub async fn sqlite_bytes(data: &Path) -> anyhow::Result<u64> {
    use sqlx::{Connection, Executor};
    let path = data.join("paddock.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    conn.close().await?;
    Ok(["paddock.db", "paddock.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum())
}

/// Reads a `KEY=value` file (the sandbox's `sandbox.env`).
pub fn read_env(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
