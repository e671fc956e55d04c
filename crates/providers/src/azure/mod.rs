//! Azure Resource Manager: resource groups (delete waits for the long-running operation)
//! and role assignments (deterministic names, `principalType` set, scoped to a resource
//! group).

use std::sync::Arc;

use crate::http::auth::EntraSignIn;

/// How to reach a subscription.
#[derive(Clone)]
pub struct AzureConfig {
    /// ARM's endpoint: `https://management.azure.com`.
    pub arm_url: String,
    pub subscription_id: String,
    /// The platform identity's sign-in (shared with the Entra provider, one token per
    /// audience).
    pub sign_in: Arc<EntraSignIn>,
    /// A CA to trust besides the system's (the sandbox's), PEM.
    pub ca_pem: Option<Vec<u8>>,
}
