//! The four clouds together: their configurations, read from the sandbox's settings or
//! from the environment for real clouds, and the provider registry they make.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paddock_engine::ProviderRegistry;

use crate::azure::AzureConfig;
use crate::entra::EntraConfig;
use crate::family::Family;
use crate::github::{GitHubAuth, GitHubConfig};
use crate::http::HttpError;
use crate::http::auth::{EntraSecret, EntraSignIn};
use crate::kubernetes::KubernetesConfig;

/// Where Paddock provisions.
#[derive(Clone)]
pub struct Clouds {
    pub github: GitHubConfig,
    pub azure: AzureConfig,
    pub entra: EntraConfig,
    pub kubernetes: KubernetesConfig,
    /// The issuer of GitHub Actions' OIDC tokens that Entra is told to trust.
    pub oidc_issuer: String,
}

fn config(message: String) -> HttpError {
    HttpError::Config {
        api: "clouds",
        message,
    }
}

/// A variable's value, or an error naming it.
fn var(env: &BTreeMap<String, String>, name: &str) -> Result<String, HttpError> {
    env.get(name)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| config(format!("{name} is not set")))
}

impl Clouds {
    /// The sandbox's clouds, from the variables `paddock sandbox` prints and writes to
    /// `DATA/sandbox.env` (the GitHub App is used, as a production install would).
    pub fn from_sandbox_env(env: &BTreeMap<String, String>) -> Result<Clouds, HttpError> {
        let ca_pem = match env.get("PADDOCK_SANDBOX_CA_FILE") {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| config(format!("PADDOCK_SANDBOX_CA_FILE {path}: {e}")))?,
            ),
            None => None,
        };
        let key_file = var(env, "PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE")?;
        let key = std::fs::read_to_string(&key_file).map_err(|e| {
            config(format!(
                "PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE {key_file}: {e}"
            ))
        })?;
        let authority = var(env, "PADDOCK_SANDBOX_AUTHORITY_URL")?;
        let tenant = var(env, "PADDOCK_SANDBOX_TENANT_ID")?;
        let sign_in = Arc::new(EntraSignIn::new(
            &authority,
            &tenant,
            &var(env, "PADDOCK_SANDBOX_CLIENT_ID")?,
            EntraSecret::ClientSecret(var(env, "PADDOCK_SANDBOX_CLIENT_SECRET")?),
        ));
        Ok(Clouds {
            github: GitHubConfig {
                api_url: var(env, "PADDOCK_SANDBOX_GITHUB_URL")?,
                org: var(env, "PADDOCK_SANDBOX_GITHUB_ORG")?,
                auth: GitHubAuth::App {
                    app_id: var(env, "PADDOCK_SANDBOX_GITHUB_APP_ID")?,
                    installation_id: var(env, "PADDOCK_SANDBOX_GITHUB_INSTALLATION_ID")?,
                    private_key_pem: key,
                },
                ca_pem: ca_pem.clone(),
                template_wait: Duration::from_secs(60),
            },
            azure: AzureConfig {
                arm_url: var(env, "PADDOCK_SANDBOX_ARM_URL")?,
                subscription_id: var(env, "PADDOCK_SANDBOX_SUBSCRIPTION_ID")?,
                sign_in: sign_in.clone(),
                ca_pem: ca_pem.clone(),
            },
            entra: EntraConfig {
                graph_url: var(env, "PADDOCK_SANDBOX_GRAPH_URL")?,
                tenant_id: tenant,
                sign_in,
                user_domain: env.get("PADDOCK_SANDBOX_USER_DOMAIN").cloned(),
                ca_pem,
            },
            kubernetes: KubernetesConfig::from_kubeconfig(
                &PathBuf::from(var(env, "PADDOCK_SANDBOX_KUBECONFIG")?),
                None,
            )?,
            oidc_issuer: var(env, "PADDOCK_SANDBOX_OIDC_ISSUER")?,
        })
    }

    /// Real clouds, from `PADDOCK_*` variables; `Ok(None)` when none is configured.
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `PADDOCK_GITHUB_URL` | API root (default `https://api.github.com`) |
    /// | `PADDOCK_GITHUB_ORG` | the organization |
    /// | `PADDOCK_GITHUB_APP_ID`, `PADDOCK_GITHUB_APP_INSTALLATION_ID`, `PADDOCK_GITHUB_APP_KEY_FILE` | the GitHub App |
    /// | `PADDOCK_GITHUB_TOKEN` | or a token, instead of the app |
    /// | `PADDOCK_AZURE_TENANT_ID`, `PADDOCK_AZURE_SUBSCRIPTION_ID`, `PADDOCK_AZURE_CLIENT_ID` | the platform identity |
    /// | `PADDOCK_AZURE_CLIENT_SECRET` or `PADDOCK_AZURE_FEDERATED_TOKEN_FILE` | its credential |
    /// | `PADDOCK_AZURE_USER_DOMAIN` | the directory's user domain |
    /// | `PADDOCK_KUBECONFIG` | the cluster (`in-cluster` for the pod's service account) |
    pub fn from_env() -> Result<Option<Clouds>, HttpError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PADDOCK_"))
            .collect();
        if !env.contains_key("PADDOCK_GITHUB_ORG") && !env.contains_key("PADDOCK_AZURE_TENANT_ID") {
            return Ok(None);
        }
        let github_url = env
            .get("PADDOCK_GITHUB_URL")
            .cloned()
            .unwrap_or_else(|| "https://api.github.com".to_owned());
        let auth = match env.get("PADDOCK_GITHUB_TOKEN") {
            Some(token) => GitHubAuth::Token(token.clone()),
            None => {
                let key_file = var(&env, "PADDOCK_GITHUB_APP_KEY_FILE")?;
                GitHubAuth::App {
                    app_id: var(&env, "PADDOCK_GITHUB_APP_ID")?,
                    installation_id: var(&env, "PADDOCK_GITHUB_APP_INSTALLATION_ID")?,
                    private_key_pem: std::fs::read_to_string(&key_file).map_err(|e| {
                        config(format!("PADDOCK_GITHUB_APP_KEY_FILE {key_file}: {e}"))
                    })?,
                }
            }
        };
        let tenant = var(&env, "PADDOCK_AZURE_TENANT_ID")?;
        let secret = match env.get("PADDOCK_AZURE_CLIENT_SECRET") {
            Some(s) => EntraSecret::ClientSecret(s.clone()),
            None => EntraSecret::AssertionFile(PathBuf::from(var(
                &env,
                "PADDOCK_AZURE_FEDERATED_TOKEN_FILE",
            )?)),
        };
        let sign_in = Arc::new(EntraSignIn::new(
            "https://login.microsoftonline.com",
            &tenant,
            &var(&env, "PADDOCK_AZURE_CLIENT_ID")?,
            secret,
        ));
        let kubernetes = match var(&env, "PADDOCK_KUBECONFIG")?.as_str() {
            "in-cluster" => KubernetesConfig::in_cluster()?,
            path => KubernetesConfig::from_kubeconfig(&PathBuf::from(path), None)?,
        };
        Ok(Some(Clouds {
            github: GitHubConfig {
                api_url: github_url,
                org: var(&env, "PADDOCK_GITHUB_ORG")?,
                auth,
                ca_pem: None,
                template_wait: Duration::from_secs(120),
            },
            azure: AzureConfig {
                arm_url: "https://management.azure.com".to_owned(),
                subscription_id: var(&env, "PADDOCK_AZURE_SUBSCRIPTION_ID")?,
                sign_in: sign_in.clone(),
                ca_pem: None,
            },
            entra: EntraConfig {
                graph_url: "https://graph.microsoft.com/v1.0".to_owned(),
                tenant_id: tenant,
                sign_in,
                user_domain: env.get("PADDOCK_AZURE_USER_DOMAIN").cloned(),
                ca_pem: None,
            },
            kubernetes,
            oidc_issuer: "https://token.actions.githubusercontent.com".to_owned(),
        }))
    }

    /// The four providers.
    pub fn families(&self) -> Result<Vec<Arc<Family>>, HttpError> {
        Ok(vec![
            Arc::new(crate::github::provider(&self.github)?),
            Arc::new(crate::azure::provider(&self.azure)?),
            Arc::new(crate::entra::provider(&self.entra)?),
            Arc::new(crate::kubernetes::provider(&self.kubernetes)?),
        ])
    }

    /// The four providers, plus the built-in `random`.
    pub fn registry(&self) -> Result<ProviderRegistry, HttpError> {
        Ok(registry_of(&self.families()?))
    }
}

/// A registry of these providers, plus the built-in `random`.
pub fn registry_of(families: &[Arc<Family>]) -> ProviderRegistry {
    families
        .iter()
        .fold(ProviderRegistry::new(), |r, f| r.with(f.clone()))
        .with(Arc::new(crate::RandomProvider::default()))
}
