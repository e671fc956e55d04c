//! The sandbox's addresses, kept across restarts.
//!
//! Everything the sandbox hands out names its root URL: the GitHub Actions issuer that
//! federated credentials trust, the kubeconfigs stored as environment secrets, `Location`
//! headers kept in outputs. A listener configured on port 0 ("any free port") therefore
//! takes a port once, on first start, and the same port at every later start, from
//! `DATA/addresses.json`; if that port is taken the start fails and says why, rather than
//! quietly moving every URL. An address given explicitly is used as given (and kept).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{SandboxConfig, SandboxError};

pub(crate) const FILE: &str = "addresses.json";

/// The addresses the sandbox listened on when it last started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Kept {
    pub listen: Option<SocketAddr>,
    pub https_listen: Option<SocketAddr>,
    pub control_listen: Option<SocketAddr>,
}

/// Where one listener binds, and whether the address came from the kept file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bind {
    pub addr: SocketAddr,
    pub kept: bool,
}

/// The addresses to bind: the configured ones, with port 0 replaced by the port kept for
/// the same listener on the same IP.
pub(crate) fn resolve(config: &SandboxConfig) -> Result<[Option<Bind>; 3], SandboxError> {
    let kept = read(&config.data_dir)?;
    let pick = |wanted: SocketAddr, kept: Option<SocketAddr>| match kept {
        Some(k) if wanted.port() == 0 && k.ip() == wanted.ip() => Bind {
            addr: k,
            kept: true,
        },
        _ => Bind {
            addr: wanted,
            kept: false,
        },
    };
    Ok([
        Some(pick(config.listen, kept.listen)),
        config.https_listen.map(|w| pick(w, kept.https_listen)),
        Some(pick(config.control_listen, kept.control_listen)),
    ])
}

/// Binds a plain TCP listener at `bind` (always configured for the HTTP and control
/// listeners); returns it with the address it got.
pub(crate) async fn bind(
    data_dir: &Path,
    bind: Option<Bind>,
) -> Result<(tokio::net::TcpListener, SocketAddr), SandboxError> {
    let b = bind.expect("the plain and control listeners are always configured");
    let listener = tokio::net::TcpListener::bind(b.addr)
        .await
        .map_err(|e| bind_error(data_dir, b, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| bind_error(data_dir, b, e))?;
    Ok((listener, addr))
}

/// The error for a failed bind: a kept address that is taken says where it comes from.
pub(crate) fn bind_error(data_dir: &Path, bind: Bind, source: std::io::Error) -> SandboxError {
    if bind.kept && source.kind() == std::io::ErrorKind::AddrInUse {
        SandboxError::KeptAddressTaken {
            addr: bind.addr,
            file: data_dir.join(FILE),
        }
    } else {
        SandboxError::Listen {
            addr: bind.addr,
            source,
        }
    }
}

/// Records the addresses actually bound.
pub(crate) fn keep(data_dir: &Path, kept: &Kept) -> Result<(), SandboxError> {
    let path = data_dir.join(FILE);
    let text = serde_json::to_vec_pretty(kept).expect("addresses serialize");
    crate::tokens::write_private(&path, &text)
        .map_err(|source| SandboxError::DataDir { path, source })
}

fn read(data_dir: &Path) -> Result<Kept, SandboxError> {
    let path: PathBuf = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SandboxError::DataDir {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kept::default()),
        Err(source) => Err(SandboxError::DataDir { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_zero_takes_the_kept_port_and_an_explicit_address_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SandboxConfig::new(dir.path());
        config.https_listen = Some(addr("127.0.0.1:0"));
        config.control_listen = addr("127.0.0.1:9999");
        keep(
            dir.path(),
            &Kept {
                listen: Some(addr("127.0.0.1:4100")),
                https_listen: Some(addr("127.0.0.1:4102")),
                control_listen: Some(addr("127.0.0.1:4101")),
            },
        )
        .unwrap();
        let [http, https, control] = resolve(&config).unwrap();
        assert_eq!(http.unwrap().addr, addr("127.0.0.1:4100"));
        assert!(http.unwrap().kept);
        assert_eq!(https.unwrap().addr, addr("127.0.0.1:4102"));
        assert_eq!(
            control.unwrap(),
            Bind {
                addr: addr("127.0.0.1:9999"),
                kept: false
            }
        );
    }

    #[test]
    fn nothing_kept_or_another_ip_leaves_the_configured_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SandboxConfig::new(dir.path());
        assert_eq!(resolve(&config).unwrap()[0].unwrap().addr, config.listen);
        keep(
            dir.path(),
            &Kept {
                listen: Some(addr("127.0.0.2:4100")),
                ..Kept::default()
            },
        )
        .unwrap();
        config.https_listen = None;
        let [http, https, _] = resolve(&config).unwrap();
        assert_eq!(http.unwrap().addr, addr("127.0.0.1:0"));
        assert_eq!(https, None);
    }
}
