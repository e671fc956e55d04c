//! HTTPS for the sandbox: a local certificate authority and a TLS listener for `axum::serve`.
//!
//! Job: official Azure SDKs and MSAL refuse to send bearer tokens over plain HTTP, so the
//! emulated APIs are also served over TLS, with a certificate the clients can be told to
//! trust (`PADDOCK_SANDBOX_CA_FILE`).
//!
//! Invariants:
//! - The CA is created on first start (`DATA/ca-key.pem`, mode 0600, and `DATA/ca.pem`) and
//!   kept: a client that trusted `ca.pem` once keeps working across restarts. Its name is
//!   derived from its key, so it is rebuilt from `ca-key.pem` alone and no certificate
//!   parser is needed.
//! - The CA can only vouch for loopback, private and link-local addresses and `localhost`
//!   (critical name constraints), so trusting it cannot expose anything else to a leaked key.
//! - The server certificate is issued afresh on every start (new key, kept in memory only)
//!   for `localhost`, `127.0.0.1`, `::1` and the listen address, and checked against
//!   `ca.pem` before the listener serves, so a start never hands out a certificate the
//!   written CA does not vouch for.
//! - One TLS stack: rustls with the `ring` provider, passed explicitly.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The CA certificate, as clients are given it.
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The longest a client may take over its handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The server certificate's lifetime: under Apple's 398-day limit for TLS server
/// certificates, which it applies to locally trusted CAs too; the certificate is re-issued
/// on every start anyway.
const SERVER_CERT_DAYS: i64 = 397;
const CA_YEARS: i64 = 20;

/// Addresses the CA may vouch for: loopback, unspecified, private and link-local.
const PERMITTED_NETWORKS: [(IpAddr, u8); 10] = [
    (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 32),
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: group or others may read the CA key; `chmod 600` it")]
    KeyPermissions { path: PathBuf },
    #[error("{path}: not a usable CA key ({source}); remove it and ca.pem to start a new CA")]
    Key { path: PathBuf, source: rcgen::Error },
    #[error("{path}: no PEM certificate in it ({source}); remove it to write it again")]
    CaCertificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "{path} does not vouch for the sandbox's certificate ({source}); remove it to write it again from ca-key.pem"
    )]
    CaMismatch {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error(
        "HTTPS on {0}: the sandbox CA only vouches for loopback, private and link-local addresses"
    )]
    HostNotPermitted(IpAddr),
}

/// The sandbox's certificate authority, loaded from or created in the data directory.
pub struct Authority {
    key: KeyPair,
    /// Where the CA certificate is (`DATA/ca.pem`).
    pub ca_file: PathBuf,
    ca_cert: CertificateDer<'static>,
}

impl Authority {
    /// Loads the CA kept in `data_dir`, creating what is missing: a new key (and so a new
    /// CA) only if there is none; `ca.pem` again from the key if it was removed.
    pub fn open(data_dir: &Path) -> Result<Authority, TlsError> {
        let key_path = data_dir.join(CA_KEY_FILE);
        let key = load_or_create(&key_path, 0o600, || {
            Ok(KeyPair::generate()?.serialize_pem().into_bytes())
        })?;
        check_private(&key_path)?;
        let key = std::str::from_utf8(&key)
            .map_err(|_| rcgen::Error::CouldNotParseKeyPair)
            .and_then(KeyPair::from_pem)
            .map_err(|source| TlsError::Key {
                path: key_path.clone(),
                source,
            })?;
        let ca_file = data_dir.join(CA_FILE);
        let pem = load_or_create(&ca_file, 0o644, || {
            let now = now();
            let mut params = ca_params(&key);
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(365 * CA_YEARS);
            Ok(params.self_signed(&key)?.pem().into_bytes())
        })?;
        let ca_cert =
            CertificateDer::from_pem_slice(&pem).map_err(|source| TlsError::CaCertificate {
                path: ca_file.clone(),
                source,
            })?;
        Ok(Authority {
            key,
            ca_file,
            ca_cert,
        })
    }

    /// A server configuration for the HTTPS listener on `listen`, with a certificate issued
    /// now for `localhost`, `127.0.0.1`, `::1` and `listen`'s address.
    pub fn server_config(&self, listen: IpAddr) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        if !permitted(listen) {
            return Err(TlsError::HostNotPermitted(listen));
        }
        let provider = provider();
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        if !names.contains(&listen.to_string()) {
            names.push(listen.to_string());
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Paddock sandbox");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = now();
        // An hour of slack for clocks that lag this one.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(SERVER_CERT_DAYS);
        let leaf_key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(&self.key), &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer)?.der().clone();
        self.check(&leaf, listen, &provider)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf], key)?;
        // axum serves HTTP/1 only: a client offering h2 must fall back, not fail.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Verifies `leaf` as a client trusting only `ca.pem` would, for each name it is used
    /// under: catches a `ca.pem` that is not this key's CA (replaced, or from another
    /// sandbox).
    fn check(
        &self,
        leaf: &CertificateDer<'_>,
        listen: IpAddr,
        provider: &Arc<CryptoProvider>,
    ) -> Result<(), TlsError> {
        let mismatch = |source| TlsError::CaMismatch {
            path: self.ca_file.clone(),
            source,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_cert.clone()).map_err(mismatch)?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .map_err(|e| mismatch(rustls::Error::General(e.to_string())))?;
        for name in [
            ServerName::try_from("localhost").expect("valid"),
            listen.into(),
        ] {
            verifier
                .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
                .map_err(mismatch)?;
        }
        Ok(())
    }
}

/// The workspace's one crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA's parameters, a function of its key alone: the same key always yields the same
/// issuer name and key identifier, so certificates issued after a restart chain to the
/// `ca.pem` written on the first.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String = Sha256::digest(key.public_key_raw())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Paddock");
    // The key's digest tells apart the CAs of several sandboxes trusted on one machine.
    name.push(DnType::CommonName, format!("Paddock sandbox CA {id}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut permitted = vec![GeneralSubtree::DnsName("localhost".into())];
    permitted.extend(
        PERMITTED_NETWORKS.iter().map(|&(ip, prefix)| {
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, prefix))
        }),
    );
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    params
}

/// Whether `ip` lies in one of the networks the CA may vouch for.
fn permitted(ip: IpAddr) -> bool {
    PERMITTED_NETWORKS
        .iter()
        .any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
}

fn now() -> time::OffsetDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::OffsetDateTime::from_unix_timestamp(secs).expect("the clock is within year 9999")
}

/// The contents of `path`, which `create` makes if it does not exist: written whole to a
/// private temp file, then hard-linked into place, so a crash leaves no partial file and two
/// sandboxes starting at once on one directory agree on the first one written.
fn load_or_create(
    path: &Path,
    mode: u32,
    create: impl FnOnce() -> Result<Vec<u8>, TlsError>,
) -> Result<Vec<u8>, TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        read => return read.map_err(io),
    }
    let bytes = create()?;
    let tmp = path.with_extension(format!("{}.{}.tmp", std::process::id(), crate::new_id()));
    let linked = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path).map_err(io),
        Err(e) => Err(io(e)),
    }
}

/// Refuses a key file that group or others may read, as the master key file is refused.
fn check_private(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// A TLS listener for `axum::serve`. Handshakes run in their own tasks, so a slow or
/// silent client delays only itself; `accept` yields connections once their handshake
/// is done. Dropping the listener (when the server stops) stops the accepting task.
pub(crate) struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        mut tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, incoming) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = tx.closed() => return,
                    // axum's accept retries (and backs off on) errors such as EMFILE.
                    conn = axum::serve::Listener::accept(&mut tcp) => conn,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    // A failed handshake is the client's to report (e.g. an untrusted CA).
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { incoming, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accepting task only ends once this receiver is dropped, so this is
            // unreachable; waiting forever is what a listener with no clients does.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permitted_networks() {
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.31.255.1",
            "192.168.1.10",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(permitted(ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:db8::1", "::2"] {
            assert!(!permitted(no.parse().unwrap()), "{no}");
        }
    }
}
