//! The Azure CLI and Microsoft's Python libraries, unchanged, against the sandbox: `az`
//! registers the sandbox as a cloud from its ARM endpoint (ARM's metadata document), signs
//! in as the platform's service principal and manages resource groups; `azure-identity`
//! with `azure-mgmt-resource`, and `msgraph-sdk`, do what Paddock's `azure` and `entra`
//! providers do.
//!
//! MSAL checks an authority it does not know with Microsoft's instance discovery, on the
//! internet; the sandbox is such an authority, so the CLI is told what it is told for any
//! private cloud (Azure Stack): `az config set core.instance_discovery=false`. The Python
//! libraries are told the same with `disable_instance_discovery=True`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::rig::{Clients, SandboxPorts, SandboxProcess, ServeProcess, clean_env, free_port};

/// The Azure CLI with a configuration directory of its own, trusting the sandbox's CA.
struct Az {
    bin: PathBuf,
    env: BTreeMap<String, String>,
}

impl Az {
    fn new(clients: &Clients, config_dir: &Path, sandbox: &BTreeMap<String, String>) -> Az {
        let mut env = BTreeMap::new();
        env.insert("AZURE_CONFIG_DIR".into(), config_dir.display().to_string());
        env.insert("AZURE_CORE_COLLECT_TELEMETRY".into(), "false".into());
        env.insert("AZURE_CORE_SURVEY_MESSAGE".into(), "false".into());
        env.insert("AZURE_CORE_ONLY_SHOW_ERRORS".into(), "true".into());
        env.insert(
            "REQUESTS_CA_BUNDLE".into(),
            sandbox["PADDOCK_SANDBOX_CA_FILE"].clone(),
        );
        Az {
            bin: clients.bin("az"),
            env,
        }
    }

    /// Runs `az ARGS`; the output and whether it succeeded.
    fn try_run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(&self.bin);
        clean_env(&mut cmd);
        cmd.envs(&self.env).args(args);
        let out = cmd.output().expect("running az");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `az ARGS`, panicking with its output unless it succeeds; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.try_run(args);
        assert!(
            ok,
            "az {} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            args.join(" ")
        );
        stdout
    }

    /// Runs `az ARGS --output json` and parses what it printed.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let out = self.run(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("az {args:?} printed {out}: {e}"))
    }
}

/// What the sandbox holds, from its control API's inspection.
fn inspect(clients: &Clients, control_url: &str) -> Value {
    let script = "import os, urllib.request\n\
                  print(urllib.request.urlopen(os.environ['URL'] + '/inspect').read().decode())";
    let env = BTreeMap::from([("URL".to_owned(), control_url.to_owned())]);
    let out = clients.python(script, &env);
    serde_json::from_str(&crate::rig::succeeded("reading /inspect", &out)).unwrap()
}

/// The names of the resource groups the sandbox holds.
fn groups(clients: &Clients, control_url: &str) -> Vec<String> {
    inspect(clients, control_url)["arm"]["resourceGroup"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| g["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Signs in with the platform's service principal into a cloud already registered and set;
/// checks what az says it signed in to.
fn sign_in(az: &Az, sandbox: &BTreeMap<String, String>, cloud: &str) {
    az.run(&["config", "set", "core.instance_discovery=false"]);
    let accounts = az.json(&[
        "login",
        "--service-principal",
        "--username",
        &sandbox["PADDOCK_SANDBOX_CLIENT_ID"],
        "--password",
        &sandbox["PADDOCK_SANDBOX_CLIENT_SECRET"],
        "--tenant",
        &sandbox["PADDOCK_SANDBOX_TENANT_ID"],
    ]);
    let accounts = accounts.as_array().expect("az login lists accounts");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(
        accounts[0]["id"],
        sandbox["PADDOCK_SANDBOX_SUBSCRIPTION_ID"]
    );
    assert_eq!(
        accounts[0]["tenantId"],
        sandbox["PADDOCK_SANDBOX_TENANT_ID"]
    );
    assert_eq!(accounts[0]["user"]["type"], "servicePrincipal");
    assert_eq!(
        accounts[0]["user"]["name"],
        sandbox["PADDOCK_SANDBOX_CLIENT_ID"]
    );
    assert_eq!(accounts[0]["cloudName"], cloud);

    let account = az.json(&["account", "show"]);
    assert_eq!(account["id"], sandbox["PADDOCK_SANDBOX_SUBSCRIPTION_ID"]);
    assert_eq!(account["environmentName"], cloud);
    assert_eq!(account["state"], "Enabled");
    assert_eq!(account["isDefault"], true);
}

/// `az group create/show/list/update/delete` on a group named `name`, each checked in
/// what az prints and in what the sandbox holds.
fn manage_a_resource_group(az: &Az, clients: &Clients, control_url: &str, name: &str) {
    let subscription = az.json(&["account", "show"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = az.json(&[
        "group",
        "create",
        "--name",
        name,
        "--location",
        "westeurope",
        "--tags",
        "team=a",
    ]);
    assert_eq!(
        created["id"],
        format!("/subscriptions/{subscription}/resourceGroups/{name}")
    );
    assert_eq!(created["location"], "westeurope");
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    assert_eq!(created["tags"]["team"], "a");
    assert!(groups(clients, control_url).contains(&name.to_owned()));

    let shown = az.json(&["group", "show", "--name", name]);
    assert_eq!(shown["name"], name);
    let listed = az.json(&["group", "list"]);
    assert!(
        listed.as_array().unwrap().iter().any(|g| g["name"] == name),
        "{listed}"
    );
    assert_eq!(az.run(&["group", "exists", "--name", name]).trim(), "true");

    let updated = az.json(&["group", "update", "--name", name, "--tags", "env=test"]);
    assert_eq!(updated["tags"], serde_json::json!({"env": "test"}));
    let held = inspect(clients, control_url)["arm"]["resourceGroup"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .cloned()
        .unwrap();
    assert_eq!(held["tags"], serde_json::json!({"env": "test"}));

    // az waits for the long-running delete, polling where ARM says.
    az.run(&["group", "delete", "--name", name, "--yes"]);
    assert_eq!(az.run(&["group", "exists", "--name", name]).trim(), "false");
    assert!(!groups(clients, control_url).contains(&name.to_owned()));
}

#[test]
fn az_registers_the_sandbox_from_its_arm_endpoint_signs_in_and_manages_resource_groups() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let az = Az::new(&clients, &dir.path().join("az"), &sandbox.env);
    let arm = sandbox.get("PADDOCK_SANDBOX_ARM_URL");

    // az reads ARM's metadata document and takes every endpoint from it.
    az.run(&[
        "cloud",
        "register",
        "--name",
        "paddock-sandbox",
        "--endpoint-resource-manager",
        arm,
    ]);
    let cloud = az.json(&["cloud", "show", "--name", "paddock-sandbox"]);
    let endpoints = &cloud["endpoints"];
    // What the command line named stands; the rest is the document's.
    assert_eq!(endpoints["resourceManager"], arm);
    assert_eq!(
        endpoints["activeDirectory"],
        format!("{}/", sandbox.get("PADDOCK_SANDBOX_AUTHORITY_URL"))
    );
    assert_eq!(
        endpoints["activeDirectoryResourceId"],
        "https://management.core.windows.net/"
    );
    assert_eq!(
        endpoints["microsoftGraphResourceId"],
        format!(
            "{}/",
            sandbox
                .get("PADDOCK_SANDBOX_GRAPH_URL")
                .trim_end_matches("/v1.0")
        )
    );
    az.run(&["cloud", "set", "--name", "paddock-sandbox"]);

    sign_in(&az, &sandbox.env, "paddock-sandbox");
    manage_a_resource_group(
        &az,
        &clients,
        sandbox.get("PADDOCK_SANDBOX_CONTROL_URL"),
        "rg",
    );
}

#[test]
fn az_registers_the_sandbox_from_a_cloud_config_file() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let az = Az::new(&clients, &dir.path().join("az"), &sandbox.env);
    let arm = sandbox.get("PADDOCK_SANDBOX_ARM_URL");

    // A cloud config naming only ARM: the rest comes from ARM's metadata document.
    let config = dir.path().join("cloud.json");
    std::fs::write(
        &config,
        serde_json::json!({"endpoints": {"resourceManager": arm}}).to_string(),
    )
    .unwrap();
    az.run(&[
        "cloud",
        "register",
        "--name",
        "sandbox-from-config",
        "--cloud-config",
        &format!("@{}", config.display()),
    ]);
    let cloud = az.json(&["cloud", "show", "--name", "sandbox-from-config"]);
    assert_eq!(
        cloud["endpoints"]["activeDirectory"],
        format!("{}/", sandbox.get("PADDOCK_SANDBOX_AUTHORITY_URL"))
    );
    assert_eq!(cloud["endpoints"]["resourceManager"], arm);
    az.run(&["cloud", "set", "--name", "sandbox-from-config"]);

    sign_in(&az, &sandbox.env, "sandbox-from-config");
    assert_eq!(az.json(&["group", "list"]), serde_json::json!([]));
}

#[test]
fn az_manages_resource_groups_in_the_sandbox_paddock_serve_runs() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(&dir.path().join("data"), free_port());
    let sandbox = &serve.sandbox_env;
    assert!(
        sandbox.contains_key("PADDOCK_SANDBOX_CA_FILE"),
        "the in-process sandbox serves HTTPS, as MSAL needs: {sandbox:?}"
    );
    let az = Az::new(&clients, &dir.path().join("az"), sandbox);
    az.run(&[
        "cloud",
        "register",
        "--name",
        "paddock-serve",
        "--endpoint-resource-manager",
        &sandbox["PADDOCK_SANDBOX_ARM_URL"],
    ]);
    az.run(&["cloud", "set", "--name", "paddock-serve"]);
    sign_in(&az, sandbox, "paddock-serve");
    manage_a_resource_group(
        &az,
        &clients,
        &sandbox["PADDOCK_SANDBOX_CONTROL_URL"],
        "rg-serve",
    );
}

/// Runs a Python script of the clients' environment against a fresh `paddock sandbox`
/// (its settings as the environment); the sandbox, and the JSON the script printed.
fn run_script(clients: &Clients, dir: &Path, script: &str) -> (SandboxProcess, Value) {
    let sandbox = SandboxProcess::start(&dir.join("sandbox"), SandboxPorts::kept());
    let out = clients.python(script, &sandbox.env);
    let printed = crate::rig::succeeded("the Python script", &out);
    let result = serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("the script printed {printed}: {e}"));
    (sandbox, result)
}

/// What the `azure` provider does, with `azure-identity` and `azure-mgmt-resource`: a client
/// secret credential against the sandbox's authority, a resource management client on its
/// ARM root with the provider's scope, a resource group created, read, tagged, deleted
/// (the delete's long-running operation polled to its end).
const ARM_SCRIPT: &str = r#"
import json, os
from azure.identity import ClientSecretCredential
from azure.mgmt.resource import ResourceManagementClient
from azure.core.exceptions import ResourceNotFoundError

env = os.environ
ca = env["PADDOCK_SANDBOX_CA_FILE"]
credential = ClientSecretCredential(
    env["PADDOCK_SANDBOX_TENANT_ID"],
    env["PADDOCK_SANDBOX_CLIENT_ID"],
    env["PADDOCK_SANDBOX_CLIENT_SECRET"],
    authority=env["PADDOCK_SANDBOX_AUTHORITY_URL"],
    disable_instance_discovery=True,
    connection_verify=ca,
)
client = ResourceManagementClient(
    credential,
    env["PADDOCK_SANDBOX_SUBSCRIPTION_ID"],
    base_url=env["PADDOCK_SANDBOX_ARM_URL"],
    credential_scopes=["https://management.azure.com/.default"],
    connection_verify=ca,
)
groups = client.resource_groups
created = groups.create_or_update("rg-python", {"location": "westeurope", "tags": {"team": "a"}})
read = groups.get("rg-python")
tagged = groups.update("rg-python", {"tags": {"team": "a", "env": "test"}})
listed = [g.name for g in groups.list()]
poller = groups.begin_delete("rg-python", polling_interval=0.2)
poller.result()
try:
    groups.get("rg-python")
    after = "still there"
except ResourceNotFoundError as e:
    after = e.error.code
print(json.dumps({
    "created": created.as_dict(),
    "read": read.as_dict(),
    "tagged": tagged.tags,
    "listed": listed,
    "delete": poller.status(),
    "exists": groups.check_existence("rg-python"),
    "after": after,
}))
"#;

#[test]
fn azure_identity_and_azure_mgmt_resource_manage_a_resource_group() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, result) = run_script(&clients, dir.path(), ARM_SCRIPT);
    let id = format!(
        "/subscriptions/{}/resourceGroups/rg-python",
        sandbox.get("PADDOCK_SANDBOX_SUBSCRIPTION_ID")
    );
    assert_eq!(result["created"]["id"], id, "{result}");
    assert_eq!(
        result["created"]["properties"]["provisioning_state"],
        "Succeeded"
    );
    assert_eq!(result["read"]["tags"], serde_json::json!({"team": "a"}));
    assert_eq!(
        result["tagged"],
        serde_json::json!({"team": "a", "env": "test"})
    );
    assert_eq!(result["listed"], serde_json::json!(["rg-python"]));
    assert_eq!(result["delete"], "Succeeded");
    assert_eq!(result["exists"], false);
    assert_eq!(result["after"], "ResourceGroupNotFound");
    assert!(groups(&clients, sandbox.get("PADDOCK_SANDBOX_CONTROL_URL")).is_empty());
}

/// What the `entra` provider does, with `msgraph-sdk` on the sandbox's Graph root: a
/// security group, an application, its service principal (made a member of the group) and
/// a federated identity credential, read back and deleted.
const GRAPH_SCRIPT: &str = r#"
import asyncio, json, os, urllib.parse
import httpx
from azure.identity import ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.group import Group
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.service_principal import ServicePrincipal

env = os.environ
ca = env["PADDOCK_SANDBOX_CA_FILE"]
root = env["PADDOCK_SANDBOX_GRAPH_URL"]

async def main():
    credential = ClientSecretCredential(
        env["PADDOCK_SANDBOX_TENANT_ID"],
        env["PADDOCK_SANDBOX_CLIENT_ID"],
        env["PADDOCK_SANDBOX_CLIENT_SECRET"],
        authority=env["PADDOCK_SANDBOX_AUTHORITY_URL"],
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=[urllib.parse.urlparse(root).hostname],
    )
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ca))
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = root
    graph = GraphServiceClient(request_adapter=adapter)

    group = await graph.groups.post(Group(
        display_name="team-a", mail_nickname="team-a", mail_enabled=False, security_enabled=True,
    ))
    app = await graph.applications.post(Application(display_name="team-a-test"))
    sp = await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
    await graph.groups.by_group_id(group.id).members.ref.post(
        ReferenceCreate(odata_id=f"{root}/directoryObjects/{sp.id}")
    )
    fic = await graph.applications.by_application_id(app.id).federated_identity_credentials.post(
        FederatedIdentityCredential(
            name="github-test",
            issuer=env["PADDOCK_SANDBOX_OIDC_ISSUER"],
            subject="repo:acme/checkout:environment:test",
            audiences=["api://AzureADTokenExchange"],
        )
    )

    read_group = await graph.groups.by_group_id(group.id).get()
    members = await graph.groups.by_group_id(group.id).members.get()
    read_app = await graph.applications.by_application_id(app.id).get()
    read_sp = await graph.service_principals.by_service_principal_id(sp.id).get()
    fics = await graph.applications.by_application_id(app.id).federated_identity_credentials.get()

    await graph.applications.by_application_id(app.id).federated_identity_credentials.by_federated_identity_credential_id(fic.id).delete()
    await graph.service_principals.by_service_principal_id(sp.id).delete()
    await graph.applications.by_application_id(app.id).delete()
    await graph.groups.by_group_id(group.id).delete()
    gone = {}
    for name, request in [
        ("group", graph.groups.by_group_id(group.id)),
        ("application", graph.applications.by_application_id(app.id)),
        ("servicePrincipal", graph.service_principals.by_service_principal_id(sp.id)),
    ]:
        try:
            await request.get()
            gone[name] = None
        except APIError as e:
            gone[name] = e.response_status_code
    print(json.dumps({
        "group": {"id": group.id, "displayName": read_group.display_name, "securityEnabled": read_group.security_enabled},
        "members": [m.id for m in members.value],
        "application": {"id": app.id, "appId": read_app.app_id, "displayName": read_app.display_name},
        "servicePrincipal": {"id": sp.id, "appId": read_sp.app_id},
        "federatedCredentials": [
            {"name": f.name, "issuer": f.issuer, "subject": f.subject, "audiences": f.audiences}
            for f in fics.value
        ],
        "gone": gone,
    }))

asyncio.run(main())
"#;

#[test]
fn msgraph_sdk_manages_groups_applications_and_federated_credentials() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, result) = run_script(&clients, dir.path(), GRAPH_SCRIPT);
    assert_eq!(result["group"]["displayName"], "team-a", "{result}");
    assert_eq!(result["group"]["securityEnabled"], true);
    assert_eq!(
        result["members"],
        serde_json::json!([result["servicePrincipal"]["id"]])
    );
    assert_eq!(result["application"]["displayName"], "team-a-test");
    assert_eq!(
        result["servicePrincipal"]["appId"],
        result["application"]["appId"]
    );
    assert_eq!(
        result["federatedCredentials"],
        serde_json::json!([{
            "name": "github-test",
            "issuer": sandbox.get("PADDOCK_SANDBOX_OIDC_ISSUER"),
            "subject": "repo:acme/checkout:environment:test",
            "audiences": ["api://AzureADTokenExchange"],
        }])
    );
    assert_eq!(
        result["gone"],
        serde_json::json!({"group": 404, "application": 404, "servicePrincipal": 404})
    );
    // Nothing of it is left in the directory: only the platform's own application.
    let graph = &inspect(&clients, sandbox.get("PADDOCK_SANDBOX_CONTROL_URL"))["graph"];
    let names: Vec<&str> = graph["application"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["displayName"].as_str())
        .collect();
    assert_eq!(names, ["paddock-platform"]);
    assert!(
        graph
            .get("group")
            .is_none_or(|g| g.as_array().unwrap().is_empty())
    );
}
