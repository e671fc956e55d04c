//! Where a cluster's address and credentials come from: a kubeconfig file (as kubectl
//! reads it: the current or a named context, its cluster's server and CA, its user's
//! token, token file or client certificate), or the service account of the pod Paddock
//! runs in. And the other way: a kubeconfig for a service account, as a team's workflow
//! gets it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use marked_yaml::Node;
use serde_json::{Map, Value as Json};

use super::{KubeAuth, KubernetesConfig};
use crate::http::HttpError;

/// Where a pod's service-account token and the cluster's CA are mounted.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn config_error(message: impl Into<String>) -> HttpError {
    HttpError::Config {
        api: "kubernetes",
        message: message.into(),
    }
}

/// A YAML node as JSON, every scalar a string (kubeconfig values are strings).
fn to_json(node: &Node) -> Json {
    match node {
        Node::Scalar(s) => Json::String(s.as_str().to_owned()),
        Node::Sequence(items) => Json::Array(items.iter().map(to_json).collect()),
        Node::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// The entry of a kubeconfig list (`clusters`, `users`, `contexts`) called `name`: its
/// inner object (`cluster`, `user`, `context`).
fn named<'a>(
    doc: &'a Json,
    list: &str,
    inner: &str,
    name: &str,
    file: &Path,
) -> Result<&'a Json, HttpError> {
    doc[list]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == name)
        .map(|entry| &entry[inner])
        .ok_or_else(|| {
            config_error(format!(
                "{}: no {inner} named {name:?} in `{list}`",
                file.display()
            ))
        })
}

fn text<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v[key].as_str().filter(|s| !s.is_empty())
}

impl KubernetesConfig {
    /// The cluster and user of a kubeconfig's context: `context`, or the file's
    /// `current-context`. Relative file names in it are relative to the file's directory.
    /// Credentials: `tokenFile` (re-read as it rotates), else `token`, else a client
    /// certificate and key (`client-certificate(-data)`, `client-key(-data)`). Exec
    /// plugins and auth providers are not supported.
    pub fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Self, HttpError> {
        let text_of = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!(
                "cannot read the kubeconfig {}: {e}",
                path.display()
            ))
        })?;
        let root = marked_yaml::parse_yaml(0, &text_of)
            .map_err(|e| config_error(format!("{}: not a kubeconfig: {e}", path.display())))?;
        let doc = to_json(&root);
        let base = path.parent().unwrap_or(Path::new("."));
        let context_name = match context {
            Some(c) => c.to_owned(),
            None => text(&doc, "current-context")
                .ok_or_else(|| {
                    config_error(format!(
                        "{}: no current-context; name the context to use",
                        path.display()
                    ))
                })?
                .to_owned(),
        };
        let ctx = named(&doc, "contexts", "context", &context_name, path)?;
        let cluster_name = text(ctx, "cluster").ok_or_else(|| {
            config_error(format!(
                "{}: context {context_name:?} names no cluster",
                path.display()
            ))
        })?;
        let cluster = named(&doc, "clusters", "cluster", cluster_name, path)?;
        let server = text(cluster, "server")
            .ok_or_else(|| {
                config_error(format!(
                    "{}: cluster {cluster_name:?} has no server",
                    path.display()
                ))
            })?
            .to_owned();
        if cluster["insecure-skip-tls-verify"] == "true" {
            return Err(config_error(format!(
                "{}: cluster {cluster_name:?} skips TLS verification, which Paddock does not do; give its CA (certificate-authority-data)",
                path.display()
            )));
        }
        let ca_pem = material(cluster, "certificate-authority", base, path)?;
        let user_name = text(ctx, "user").ok_or_else(|| {
            config_error(format!(
                "{}: context {context_name:?} names no user",
                path.display()
            ))
        })?;
        let user = named(&doc, "users", "user", user_name, path)?;
        let auth = if let Some(file) = text(user, "tokenFile") {
            KubeAuth::TokenFile(resolve(base, file))
        } else if let Some(token) = text(user, "token") {
            KubeAuth::Token(token.to_owned())
        } else if let Some(cert) = material(user, "client-certificate", base, path)? {
            let key = material(user, "client-key", base, path)?.ok_or_else(|| {
                config_error(format!(
                    "{}: user {user_name:?} has a client certificate but no client-key(-data)",
                    path.display()
                ))
            })?;
            let mut pem = cert;
            if !pem.ends_with(b"\n") {
                pem.push(b'\n');
            }
            pem.extend_from_slice(&key);
            KubeAuth::ClientCertificate(pem)
        } else {
            let why = if !user["exec"].is_null() {
                "uses an exec credential plugin, which Paddock does not run"
            } else if !user["auth-provider"].is_null() {
                "uses an auth provider, which Paddock does not support"
            } else {
                "has no token, tokenFile or client certificate"
            };
            return Err(config_error(format!(
                "{}: user {user_name:?} {why}; give Paddock a token (a service account's) or a client certificate",
                path.display()
            )));
        };
        Ok(KubernetesConfig {
            server,
            auth,
            ca_pem,
        })
    }

    /// The pod's own service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the token
    /// (re-read as the kubelet rotates it) and CA mounted in
    /// `/var/run/secrets/kubernetes.io/serviceaccount`.
    pub fn in_cluster() -> Result<Self, HttpError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    config_error(format!(
                        "{name} is not set: Paddock is not running in a cluster's pod"
                    ))
                })
        };
        let host = var("KUBERNETES_SERVICE_HOST")?;
        let port = var("KUBERNETES_SERVICE_PORT")?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Self::from_service_account(
            &format!("https://{host}:{port}"),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// `server` reached with a service account's credentials mounted in `dir` as a pod
    /// has them: `token` (re-read as it rotates) and, if there, `ca.crt`.
    pub fn from_service_account(server: &str, dir: &Path) -> Result<Self, HttpError> {
        let token = dir.join("token");
        if !token.is_file() {
            return Err(config_error(format!(
                "{} does not exist: no service-account token is mounted",
                token.display()
            )));
        }
        let ca = dir.join("ca.crt");
        let ca_pem = match std::fs::read(&ca) {
            Ok(pem) => Some(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(config_error(format!("cannot read {}: {e}", ca.display()))),
        };
        Ok(KubernetesConfig {
            server: server.to_owned(),
            auth: KubeAuth::TokenFile(token),
            ca_pem,
        })
    }
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// PEM material given inline (`{key}-data`, base64) or as a file (`{key}`).
fn material(
    entry: &Json,
    key: &str,
    base: &Path,
    file: &Path,
) -> Result<Option<Vec<u8>>, HttpError> {
    if let Some(data) = text(entry, &format!("{key}-data")) {
        let compact: String = data.split_whitespace().collect();
        return STANDARD.decode(compact).map(Some).map_err(|e| {
            config_error(format!("{}: {key}-data is not base64: {e}", file.display()))
        });
    }
    match text(entry, key) {
        Some(name) => {
            let path = resolve(base, name);
            std::fs::read(&path).map(Some).map_err(|e| {
                config_error(format!(
                    "{}: cannot read {key} {}: {e}",
                    file.display(),
                    path.display()
                ))
            })
        }
        None => Ok(None),
    }
}

/// A YAML scalar that reads back as exactly `s`: a JSON string is a YAML double-quoted
/// scalar.
fn quoted(s: &str) -> String {
    Json::String(s.to_owned()).to_string()
}

/// A kubeconfig that acts as a service account of `namespace` with `token`, on `server`
/// trusting `ca_pem` (when given, else the system's roots), its context's namespace the
/// account's.
pub(super) fn for_service_account(
    server: &str,
    ca_pem: Option<&[u8]>,
    namespace: &str,
    account: &str,
    token: &str,
) -> String {
    let name = format!("{namespace}-{account}");
    let ca = match ca_pem.filter(|pem| !pem.is_empty()) {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            quoted(&STANDARD.encode(pem))
        ),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kubernetes\n  cluster:\n    server: {server}\n{ca}\
         users:\n\
         - name: {user}\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: {context}\n  context:\n    cluster: kubernetes\n    user: {user}\n    namespace: {namespace}\n\
         current-context: {context}\n",
        server = quoted(server),
        user = quoted(&name),
        token = quoted(token),
        context = quoted(&name),
        namespace = quoted(namespace),
    )
}
