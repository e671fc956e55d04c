//! The request-policy input the server builds from a request (a create, update, destroy
//! or extend of an environment), decided by the shipped pack.
//!
//! Properties: no panic; decided within the time bound; the shipped pack decides every
//! request the server can describe (an error here is a 500 for the person asking); the
//! input says what the request said (action, team, requester, whether the environment
//! exists, which parameters an update changes); the decision is consistent and the same
//! when evaluated again.
#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use paddock_fuzz::{ArbitraryJson, bounded, json, key, text};
use paddock_policy::{Outcome, Pack};
use paddock_server::fuzzing::{Request, request_policy_input};
use serde_json::Value as Json;

static PACK: LazyLock<Pack> = LazyLock::new(|| paddock_policy::shipped().expect("shipped pack"));

#[derive(Debug)]
struct Input {
    action: &'static str,
    team: String,
    environment: String,
    version: String,
    current: Option<Json>,
    parameters: Json,
    expiry: Option<Json>,
    login: String,
    platform_admin: bool,
    role: Option<&'static str>,
    environments: Vec<String>,
}

/// Request parameters: an object, as the server has them after the blueprint's checks,
/// mostly with the names and values the environment blueprint uses.
fn parameters(u: &mut Unstructured<'_>) -> arbitrary::Result<Json> {
    let n = u.int_in_range(0..=6)?;
    let mut map = serde_json::Map::new();
    for _ in 0..n {
        let name = key(u)?;
        let value = match name.as_str() {
            "stages" if u.arbitrary()? => {
                let stages: Vec<Json> = (0..u.int_in_range(0..=3)?)
                    .map(|_| text(u).map(Json::String))
                    .collect::<arbitrary::Result<_>>()?;
                Json::Array(stages)
            }
            _ => json(u, 3)?,
        };
        map.insert(name, value);
    }
    Ok(Json::Object(map))
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let current = if u.arbitrary()? {
            Some(parameters(u)?)
        } else {
            None
        };
        Ok(Input {
            action: *u.choose(&["create", "update", "destroy", "extend"])?,
            team: text(u)?,
            environment: text(u)?,
            version: text(u)?,
            current,
            parameters: parameters(u)?,
            expiry: match u.int_in_range(0..=2)? {
                0 => None,
                1 => Some(serde_json::json!({"days": u.arbitrary::<i64>()?})),
                _ => Some(ArbitraryJson::arbitrary(u)?.0),
            },
            login: text(u)?,
            platform_admin: u.arbitrary()?,
            role: *u.choose(&[None, Some("reader"), Some("contributor"), Some("admin")])?,
            environments: (0..u.int_in_range(0..=4)?)
                .map(|_| text(u))
                .collect::<arbitrary::Result<_>>()?,
        })
    }
}

fuzz_target!(|input: Input| {
    let environments: Vec<&str> = input.environments.iter().map(String::as_str).collect();
    let request = Request {
        action: input.action,
        team: &input.team,
        environment: &input.environment,
        blueprint_version: &input.version,
        current: input.current.clone(),
        parameters: input.parameters.clone(),
        expiry: input.expiry.clone(),
        login: &input.login,
        platform_admin: input.platform_admin,
        team_role: input.role,
        environments: &environments,
    };
    let document = request_policy_input(&request);
    assert_eq!(document["point"], "request");
    assert_eq!(document["action"], input.action);
    assert_eq!(document["team"]["name"], input.team.as_str());
    assert_eq!(document["team"]["environments"], environments.len());
    assert_eq!(document["requester"]["login"], input.login.as_str());
    assert_eq!(
        document["requester"]["teamRole"],
        serde_json::json!(input.role)
    );
    assert_eq!(
        document["environment"]["exists"],
        environments.contains(&input.environment.as_str())
    );
    if let (Some(Json::Object(now)), Json::Object(asked), "update") =
        (&input.current, &input.parameters, input.action)
    {
        let changed = document["changed"]
            .as_array()
            .expect("an update lists changes");
        for name in now.keys().chain(asked.keys()) {
            let differs = now.get(name) != asked.get(name);
            assert_eq!(
                changed.contains(&Json::from(name.as_str())),
                differs,
                "{name}"
            );
        }
    }
    let decision = bounded("deciding a request", || PACK.evaluate(&document))
        .unwrap_or_else(|e| panic!("the shipped pack could not decide {document}: {e}"));
    assert_eq!(
        decision.outcome == Outcome::Deny,
        !decision.denials.is_empty(),
        "{decision:?}"
    );
    assert_eq!(
        decision,
        PACK.evaluate(&document).expect("again"),
        "deterministic"
    );
});
