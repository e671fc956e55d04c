//! Azure Resource Manager resource groups, as real clients see them.

mod common;

use std::time::Duration;

use paddock_sandbox::{ArmConfig, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const V: &str = "api-version=2024-11-01";

async fn sandbox(dir: &std::path::Path, arm: ArmConfig) -> Sandbox {
    let mut config = SandboxConfig::new(dir);
    config.arm = arm;
    Sandbox::start(config).await.unwrap()
}

fn groups(s: &Sandbox) -> String {
    format!(
        "{}/subscriptions/{}/resourcegroups",
        s.base_url, s.identity.subscription_id
    )
}

async fn put(c: &reqwest::Client, url: &str, body: Value) -> (StatusCode, Value) {
    let r = c.put(url).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_resource_group_is_created_read_updated_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox(dir.path(), ArmConfig::default()).await;
    let c = common::platform_client(&s).await;
    let url = format!("{}/rg-payments-dev?{V}", groups(&s));
    let (status, body) = put(
        &c,
        &url,
        json!({"location": "West Europe", "tags": {"team": "payments"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["id"],
        format!(
            "/subscriptions/{}/resourceGroups/rg-payments-dev",
            s.identity.subscription_id
        )
    );
    assert_eq!(body["type"], "Microsoft.Resources/resourceGroups");
    assert_eq!(body["location"], "westeurope");
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    let (status, again) = put(
        &c,
        &url,
        json!({"location": "westeurope", "tags": {"team": "payments", "stage": "dev"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "an existing group is updated");
    assert_eq!(again["tags"]["stage"], "dev");
    // Names are case-insensitive, and so are ARM's own path segments.
    let upper = format!(
        "{}/subscriptions/{}/resourceGroups/RG-PAYMENTS-DEV?{V}",
        s.base_url, s.identity.subscription_id
    );
    let (status, fetched) = get(&c, &upper).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["name"], "rg-payments-dev");
    assert_eq!(
        c.head(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let missing = format!("{}/nope?{V}", groups(&s));
    assert_eq!(
        c.head(&missing).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let (status, err) = get(&c, &missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err,
        json!({"error": {"code": "ResourceGroupNotFound", "message": "Resource group 'nope' could not be found."}})
    );
    let patched = c
        .patch(&url)
        .json(&json!({"tags": {"owner": "ada"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(
        patched.json::<Value>().await.unwrap()["tags"],
        json!({"owner": "ada"})
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_arms_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox(dir.path(), ArmConfig::default()).await;
    let c = common::platform_client(&s).await;
    let cases: Vec<(String, Value, StatusCode, &str)> = vec![
        (
            format!("{}/ok", groups(&s)),
            json!({"location": "westeurope"}),
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
        ),
        (
            format!("{}/ok?api-version=2099-01-01", groups(&s)),
            json!({"location": "westeurope"}),
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
        ),
        (
            format!("{}/bad%20name!?{V}", groups(&s)),
            json!({"location": "westeurope"}),
            StatusCode::BAD_REQUEST,
            "InvalidResourceGroup",
        ),
        (
            format!("{}/ends-with-period.?{V}", groups(&s)),
            json!({"location": "westeurope"}),
            StatusCode::BAD_REQUEST,
            "InvalidResourceGroup",
        ),
        (
            format!("{}/{}?{V}", groups(&s), "a".repeat(91)),
            json!({"location": "westeurope"}),
            StatusCode::BAD_REQUEST,
            "InvalidResourceGroup",
        ),
        (
            format!("{}/ok?{V}", groups(&s)),
            json!({"tags": {}}),
            StatusCode::BAD_REQUEST,
            "LocationRequired",
        ),
        (
            format!("{}/ok?{V}", groups(&s)),
            json!({"location": "moonbase"}),
            StatusCode::BAD_REQUEST,
            "LocationNotAvailableForResourceGroup",
        ),
        (
            format!(
                "{}/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/ok?{V}",
                s.base_url
            ),
            json!({"location": "westeurope"}),
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
        ),
    ];
    for (url, body, status, code) in cases {
        let (got, err) = put(&c, &url, body).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{url}: {err}"
        );
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (_, err) = put(
        &c,
        &format!("{}/bad%20name!?{V}", groups(&s)),
        json!({"location": "westeurope"}),
    )
    .await;
    assert_eq!(
        err["error"]["message"],
        "The provided resource group name 'bad name!' has these invalid characters: ' !'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'."
    );
    // A group cannot move.
    put(
        &c,
        &format!("{}/fixed?{V}", groups(&s)),
        json!({"location": "westeurope"}),
    )
    .await;
    let (status, err) = put(
        &c,
        &format!("{}/fixed?{V}", groups(&s)),
        json!({"location": "eastus"}),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("InvalidResourceGroupLocation"))
    );
    s.stop().await;
}

#[tokio::test]
async fn lists_are_paged_with_next_links() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox(
        dir.path(),
        ArmConfig {
            page_size: 2,
            ..ArmConfig::default()
        },
    )
    .await;
    let c = common::platform_client(&s).await;
    for i in 0..5 {
        put(
            &c,
            &format!("{}/rg-{i}?{V}", groups(&s)),
            json!({"location": "westeurope"}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut next = Some(format!("{}?{V}", groups(&s)));
    let mut pages = 0;
    while let Some(url) = next {
        let (status, page) = get(&c, &url).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        names.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_owned()),
        );
        next = page["nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["rg-0", "rg-1", "rg-2", "rg-3", "rg-4"]);
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_group_is_a_long_running_operation_to_poll() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox(
        dir.path(),
        ArmConfig {
            delete_delay: Duration::from_millis(600),
            ..ArmConfig::default()
        },
    )
    .await;
    let c = common::platform_client(&s).await;
    let url = format!("{}/rg-doomed?{V}", groups(&s));
    put(&c, &url, json!({"location": "westeurope"})).await;
    let accepted = c.delete(&url).send().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let header = |name: &str| {
        accepted
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header("location").expect("Location header");
    let async_op = header("azure-asyncoperation").expect("Azure-AsyncOperation header");
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert!(location.contains("api-version=2024-11-01"));

    let (status, deleting) = get(&c, &url).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the group exists while it is deleted"
    );
    assert_eq!(deleting["properties"]["provisioningState"], "Deleting");
    assert_eq!(
        c.get(&location).send().await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(get(&c, &async_op).await.1["status"], "InProgress");
    let (status, err) = put(&c, &url, json!({"location": "westeurope"})).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("ResourceGroupBeingDeleted"))
    );

    let started = std::time::Instant::now();
    loop {
        let poll = c.get(&location).send().await.unwrap();
        if poll.status() == StatusCode::OK {
            break;
        }
        assert_eq!(poll.status(), StatusCode::ACCEPTED);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the delete never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&c, &async_op).await.1["status"], "Succeeded");
    assert_eq!(get(&c, &url).await.0, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn what_exists_survives_a_restart_and_can_be_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let first = sandbox(dir.path(), ArmConfig::default()).await;
    let c = common::platform_client(&first).await;
    let identity = first.identity.clone();
    put(
        &c,
        &format!("{}/rg-kept?{V}", groups(&first)),
        json!({"location": "westeurope"}),
    )
    .await;
    first.stop().await;

    let second = sandbox(dir.path(), ArmConfig::default()).await;
    assert_eq!(
        second.identity, identity,
        "the tenant and subscription are kept"
    );
    let (status, kept) = get(&c, &format!("{}/rg-kept?{V}", groups(&second))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["name"], "rg-kept");

    let (status, inspected) = get(&c, &format!("{}/inspect", second.control_url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inspected["arm"]["resourceGroup"][0]["name"], "rg-kept");
    let page = c
        .get(&second.control_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("rg-kept"), "{page}");
    // The control API is not reachable through the emulated APIs.
    assert_eq!(
        get(&c, &format!("{}/inspect", second.base_url)).await.0,
        StatusCode::BAD_REQUEST
    );
    second.stop().await;
}

#[tokio::test]
async fn each_principal_has_an_hourly_budget_of_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = sandbox(
        dir.path(),
        ArmConfig {
            reads_per_hour: 3,
            writes_per_hour: 2,
            ..ArmConfig::default()
        },
    )
    .await;
    let c = common::platform_client(&s).await;
    let url = format!("{}/rg-budget?{V}", groups(&s));
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = c.head(&url).send().await.unwrap();
        remaining.push(
            r.headers()["x-ms-ratelimit-remaining-subscription-reads"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let throttled = c.get(&url).send().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 3600);
    assert_eq!(
        throttled.json::<Value>().await.unwrap()["error"]["code"],
        "SubscriptionRequestsThrottled"
    );
    // Writes have their own budget; another principal has its own too.
    let r = c
        .put(&url)
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["x-ms-ratelimit-remaining-subscription-writes"],
        "1"
    );
    s.stop().await;
}
