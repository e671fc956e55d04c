//! ARM's cloud metadata document, `GET /metadata/endpoints`: where a client learns a cloud's
//! authority, its resource ids and its service roots (`az cloud register` reads it, as do
//! the SDKs given an ARM endpoint). ARM serves it without authentication; so does the
//! sandbox, naming itself: its authority, its ARM root, its Microsoft Graph root (which az
//! also uses as Graph's resource id). Services the sandbox does not emulate keep the public
//! cloud's identifiers, for clients that insist on finding them.
//!
//! `2022-09-01` answers with the one cloud the endpoint belongs to; `2019-05-01` and
//! `2020-06-01` with a list of clouds (here, one), which is what `ARM_CLOUD_METADATA_URL`
//! points az at; `2015-01-01` with the original short form.

use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::{Arm, ArmResult, api_version, json_response};

/// The api-versions of the metadata document.
pub const METADATA_API_VERSIONS: &[&str] =
    &["2022-09-01", "2020-06-01", "2019-05-01", "2015-01-01"];

/// The sandbox cloud's name, as `az cloud list` shows a registered cloud.
pub const CLOUD_NAME: &str = "PaddockSandbox";

/// The path of the document.
pub(crate) const PATH: &str = "/metadata/endpoints";

impl Arm {
    /// `GET /metadata/endpoints?api-version=…`, authenticated or not.
    pub(super) fn metadata(&self, uri: &Uri) -> ArmResult {
        let version = api_version(uri, METADATA_API_VERSIONS)?;
        let body = match version.as_str() {
            "2022-09-01" => self.cloud(),
            "2015-01-01" => self.cloud_2015(),
            _ => json!([self.cloud()]),
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// The sandbox as a cloud, in the document's current form.
    fn cloud(&self) -> Value {
        let graph = crate::graph::resource_id(&self.base_url);
        json!({
            "portal": self.portal_url,
            "authentication": {
                "loginEndpoint": format!("{}/", self.base_url),
                // The resource ids of ARM's tokens: the first is the one az asks for.
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": "https://rest.media.azure.net",
            // Azure AD Graph is retired; the directory the sandbox has is Microsoft Graph.
            "graphAudience": graph,
            "graph": graph,
            "name": CLOUD_NAME,
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
                "acrLoginServer": "azurecr.io",
                "sqlServerHostname": "database.windows.net",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "keyVaultDns": "vault.azure.net",
                "storage": "core.windows.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "storageSyncEndpointSuffix": "afs.azure.net",
                "mhsmDns": "managedhsm.azure.net",
                "mysqlServerEndpoint": "mysql.database.azure.com",
                "postgresqlServerEndpoint": "postgres.database.azure.com",
                "mariadbServerEndpoint": "mariadb.database.azure.com",
                "synapseAnalytics": "dev.azuresynapse.net",
                "attestationEndpoint": "attest.azure.net",
            },
            "batch": "https://batch.core.windows.net/",
            "resourceManager": format!("{}/", self.base_url),
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "microsoftGraphResourceId": graph,
            "appInsightsResourceId": "https://api.applicationinsights.io",
            "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
            "attestationResourceId": "https://attest.azure.net",
            "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
            "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        })
    }

    /// The document's first form (`2015-01-01`), still read by older tools.
    fn cloud_2015(&self) -> Value {
        let cloud = self.cloud();
        json!({
            "galleryEndpoint": "",
            "graphEndpoint": cloud["graph"],
            "portalEndpoint": cloud["portal"],
            "authentication": {
                "loginEndpoint": cloud["authentication"]["loginEndpoint"],
                "audiences": cloud["authentication"]["audiences"],
            },
        })
    }
}
