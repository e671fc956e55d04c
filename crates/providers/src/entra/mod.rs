//! Entra ID over Microsoft Graph: security groups with members and owners, applications
//! (idempotent by `uniqueName`), service principals and federated identity credentials.

use std::sync::Arc;

use crate::http::auth::EntraSignIn;

/// How to reach a tenant's directory.
#[derive(Clone)]
pub struct EntraConfig {
    /// Graph's root: `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    pub tenant_id: String,
    pub sign_in: Arc<EntraSignIn>,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
}
