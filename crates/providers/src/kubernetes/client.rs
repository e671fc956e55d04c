//! The cluster as the resource types see it: get, server-side apply and delete of one
//! object, and waiting for an object to be gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paddock_engine::ProviderError;
use serde_json::{Value as Json, json};

use super::{FIELD_MANAGER, KubeAuth, KubernetesConfig};
use crate::http::auth::{Credential, StaticToken, TokenFile};
use crate::http::{Api, Call, HttpClient, HttpError, reqwest_client};

/// One kind of object the provider writes.
pub(super) struct Kind {
    /// `v1`, `rbac.authorization.k8s.io/v1`.
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// The object's path template, for traces.
    pub template: &'static str,
    /// Deleted asynchronously: the object stays (`Terminating`) until its contents go.
    pub terminates: bool,
}

impl Kind {
    /// The object's path under the server.
    pub fn path(&self, namespace: Option<&str>, name: &str) -> String {
        let root = if self.api_version.contains('/') {
            format!("/apis/{}", self.api_version)
        } else {
            format!("/api/{}", self.api_version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!(
                "{root}/namespaces/{}/{}/{}",
                segment(ns),
                self.plural,
                segment(name)
            ),
            None => format!("{root}/{}/{}", self.plural, segment(name)),
        }
    }

    /// How messages name an object: `namespace "team-a"`, `rolebinding team-a/deployers`.
    pub fn describe(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{} {ns}/{name}", self.kind),
            None => format!("{} {name}", self.kind),
        }
    }
}

/// A path segment, percent-encoded (RBAC names may hold `:` and more).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client certificate is the whole credential: no `Authorization` to add. (An empty
/// header is what the API server's token authenticator skips.)
struct NoToken;

#[async_trait]
impl Credential for NoToken {
    async fn authorization(&self, _: &reqwest::Client) -> Result<String, HttpError> {
        Ok(String::new())
    }
}

/// A cluster's API server, as the provider reaches it.
pub(super) struct Cluster {
    http: HttpClient,
    /// The server and CA a kubeconfig for this cluster names.
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
}

impl Cluster {
    pub fn new(config: &KubernetesConfig) -> Result<Cluster, HttpError> {
        let server = config.server.trim_end_matches('/').to_owned();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(HttpError::Config {
                api: "kubernetes",
                message: format!(
                    "the API server must be an http(s) URL, got {:?}",
                    config.server
                ),
            });
        }
        let (credential, identity): (Arc<dyn Credential>, Option<&[u8]>) = match &config.auth {
            KubeAuth::Token(token) => (Arc::new(StaticToken::bearer(token)), None),
            KubeAuth::TokenFile(path) => (Arc::new(TokenFile::new(path.clone())), None),
            KubeAuth::ClientCertificate(pem) => (Arc::new(NoToken), Some(pem.as_slice())),
        };
        let inner =
            reqwest_client(config.ca_pem.as_deref(), identity).map_err(|e| HttpError::Config {
                api: "kubernetes",
                message: e.message(),
            })?;
        Ok(Cluster {
            http: HttpClient::new(inner, Api::Kubernetes, server.clone(), credential),
            server,
            ca_pem: config.ca_pem.clone(),
        })
    }

    pub async fn get(&self, kind: &Kind, ns: Option<&str>, name: &str) -> Result<Json, HttpError> {
        let call = Call::get(kind.template, kind.path(ns, name));
        Ok(self.http.send(call).await?.body)
    }

    /// Server-side apply of `object` (which names its `apiVersion`, `kind`, `metadata`):
    /// creates it, or makes Paddock's fields of it what `object` says.
    pub async fn apply(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        object: Json,
    ) -> Result<Json, HttpError> {
        let call = Call::patch(kind.template, kind.path(ns, name))
            .query("fieldManager", FIELD_MANAGER)
            .query("force", "true")
            .content_type("application/apply-patch+yaml")
            .json(object);
        Ok(self.http.send(call).await?.body)
    }

    /// A JSON merge patch (RFC 7386) of `patch` onto the object: for what must not take
    /// over the fields server-side apply would (the mark `import` writes).
    pub async fn merge_patch(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        patch: Json,
    ) -> Result<Json, HttpError> {
        let call = Call::patch(kind.template, kind.path(ns, name))
            .query("fieldManager", FIELD_MANAGER)
            .content_type("application/merge-patch+json")
            .json(patch);
        Ok(self.http.send(call).await?.body)
    }

    /// Deletes the object, only if it is still the incarnation `uid` names (when given).
    /// The API's answer as is: a 404 or a failed precondition (409) is the caller's to
    /// read.
    pub async fn delete(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        uid: Option<&str>,
    ) -> Result<(), HttpError> {
        let mut options =
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
        if let Some(uid) = uid {
            options["preconditions"] = json!({"uid": uid});
        }
        let call = Call::delete(kind.template, kind.path(ns, name)).json(options);
        self.http.send(call).await.map(|_| ())
    }

    /// Deletes the object (the incarnation `uid`, when given) and, for a kind deleted
    /// asynchronously, waits until it is gone. Gone already is done.
    pub async fn delete_and_wait(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        uid: Option<&str>,
        within: Duration,
    ) -> Result<(), ProviderError> {
        match self.delete(kind, ns, name, uid).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            // A failed `uid` precondition (another incarnation holds the name), or a
            // namespace already terminating: what is there decides.
            Err(e) if e.status() == Some(409) => {
                let live = crate::family::found(self.get(kind, ns, name).await)?;
                let same = live.as_ref().is_some_and(|o| same_incarnation(o, uid));
                if !same {
                    return Ok(());
                }
                if !kind.terminates {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        if kind.terminates {
            self.wait_gone(kind, ns, name, uid, within).await?;
        }
        Ok(())
    }

    /// Polls until the object (the incarnation `uid`, when given) is gone.
    pub async fn wait_gone(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        name: &str,
        uid: Option<&str>,
        within: Duration,
    ) -> Result<(), ProviderError> {
        let mut pause = Pause::new(within);
        loop {
            let live = crate::family::found(self.get(kind, ns, name).await)?;
            match live {
                Some(object) if same_incarnation(&object, uid) => {}
                _ => return Ok(()),
            }
            if !pause.wait().await {
                let what = kind.describe(ns, name);
                let mut e = ProviderError::new(
                    "Timeout",
                    format!("{what} is still being deleted after {}", humantime::format_duration(within)),
                )
                .with_hint(format!(
                    "a finalizer on it or on something in it has not finished; `kubectl get {} {name} -o yaml` shows what it waits for",
                    kind.plural
                ));
                e.retryable = true;
                return Err(e);
            }
        }
    }
}

/// Whether `object` is the incarnation `uid` names (any incarnation, without a uid).
pub(super) fn same_incarnation(object: &Json, uid: Option<&str>) -> bool {
    uid.is_none_or(|uid| object["metadata"]["uid"] == uid)
}

/// Growing pauses between polls, up to a deadline.
pub(super) struct Pause {
    deadline: Instant,
    next: Duration,
}

impl Pause {
    pub fn new(within: Duration) -> Pause {
        Pause {
            deadline: Instant::now() + within,
            next: Duration::from_millis(100),
        }
    }

    /// Sleeps before the next poll; `false` once the deadline has passed.
    pub async fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.next.min(self.deadline - now)).await;
        self.next = (self.next * 3 / 2).min(Duration::from_secs(2));
        true
    }
}
