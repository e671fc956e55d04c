//! What the chaos test asks of Paddock: a team of three, environments created, updated
//! (stages added and removed, contributors changed) and destroyed, and team changes — drawn
//! from the test's generator — and what it then expects: each environment as last
//! requested, and each operation's events whole.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use paddock_store::db::{Db, Operation};
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value as Json, json};

pub const TEAM: &str = "crew";
const MEMBERS: [&str; 3] = ["ann", "bob", "cat"];
const STAGES: [&str; 2] = ["dev", "test"];
/// Environments that exist (or are requested) at once.
const LIVE: usize = 3;

/// The API as the platform admin.
pub struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    pub fn new(token: String) -> Api {
        Api {
            http: reqwest::Client::new(),
            token,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
        key: Option<&str>,
    ) -> Result<(u16, Json), String> {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Json::String(text)),
        ))
    }

    /// Sends a change until a replica answers it, with one idempotency key (so a request
    /// whose answer a kill cut off is not made twice); returns the operation it queued.
    async fn change(
        &self,
        urls: &[String],
        method: reqwest::Method,
        path: &str,
        body: &Json,
        key: &str,
    ) -> String {
        let mut problems = Vec::new();
        for attempt in 0..60 {
            let url = format!("{}{path}", urls[attempt % urls.len()]);
            match self.send(method.clone(), &url, Some(body), Some(key)).await {
                Ok((202, answer)) => {
                    return answer["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{method} {path}: no operation in {answer}"))
                        .to_owned();
                }
                Ok((status, answer)) if status >= 500 => {
                    problems.push(format!("{status} {answer}"))
                }
                Ok((status, answer)) => panic!("{method} {path} {body}: {status} {answer}"),
                Err(e) => problems.push(e),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{method} {path}: no replica accepted it: {problems:?}")
    }
}

/// An environment as last requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub stages: BTreeSet<String>,
    pub contributors: BTreeSet<String>,
    pub destroyed: bool,
}

#[derive(Default)]
pub struct Workload {
    /// By name, in the order made.
    environments: BTreeMap<String, Wanted>,
    made: usize,
    roles: BTreeMap<&'static str, &'static str>,
    /// What each operation is: create, update, destroy or team.
    labels: BTreeMap<String, &'static str>,
    /// The last operation asked of each environment, and of the team (key "").
    last: BTreeMap<String, String>,
    keys: usize,
}

impl Workload {
    pub fn new() -> Workload {
        Workload::default()
    }

    pub fn label(&self, op: &str) -> &'static str {
        self.labels.get(op).copied().unwrap_or("team")
    }

    /// The people, then the team with its members: their operations.
    pub async fn setup(&mut self, api: &Api, url: &str) -> Vec<String> {
        let urls = [url.to_owned()];
        for login in MEMBERS {
            let (status, answer) = api
                .send(
                    reqwest::Method::POST,
                    &format!("{url}/api/v1/users"),
                    Some(&json!({"login": login, "name": login})),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 201, "creating {login}: {answer}");
        }
        let mut ops = vec![
            api.change(
                &urls,
                reqwest::Method::POST,
                "/api/v1/teams",
                &json!({"name": TEAM}),
                "setup-team",
            )
            .await,
        ];
        for login in MEMBERS {
            ops.push(self.set_role(api, &urls, login, "contributor").await);
        }
        for op in &ops {
            self.labels.insert(op.clone(), "team");
        }
        self.last.insert(String::new(), ops.last().unwrap().clone());
        ops
    }

    async fn set_role(
        &mut self,
        api: &Api,
        urls: &[String],
        login: &'static str,
        role: &'static str,
    ) -> String {
        self.roles.insert(login, role);
        let key = self.key();
        api.change(
            urls,
            reqwest::Method::PUT,
            &format!("/api/v1/teams/{TEAM}/members/{login}"),
            &json!({"role": role}),
            &key,
        )
        .await
    }

    fn key(&mut self) -> String {
        self.keys += 1;
        format!("chaos-{}", self.keys)
    }

    /// Requests one change drawn at random among those whose target has no unfinished
    /// operation; `None` when there is none.
    pub async fn next(
        &mut self,
        api: &Api,
        urls: &[String],
        ops: &[Operation],
        rng: &mut impl Rng,
    ) -> Option<String> {
        let open: BTreeSet<&str> = ops
            .iter()
            .filter(|o| matches!(o.state.as_str(), "queued" | "running"))
            .map(|o| o.id.as_str())
            .collect();
        let idle = |target: &str| {
            self.last
                .get(target)
                .is_none_or(|op| !open.contains(op.as_str()))
        };
        let live: Vec<String> = self
            .environments
            .iter()
            .filter(|(name, w)| !w.destroyed && idle(name))
            .map(|(name, _)| name.clone())
            .collect();
        let alive = self.environments.values().filter(|w| !w.destroyed).count();
        // (action, weight)
        let mut choices: Vec<(&str, u32)> = Vec::new();
        if alive < LIVE {
            choices.push(("create", 3));
        }
        if !live.is_empty() {
            choices.extend([("stages", 2), ("contributors", 2), ("destroy", 1)]);
        }
        if idle("") {
            choices.push(("team", 1));
        }
        let total: u32 = choices.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.gen_range(0..total);
        let action = choices
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(a, _)| *a)
            .unwrap();
        let key = self.key();
        let (target, label, op) = match action {
            "create" => {
                let name = format!("app{}", self.made);
                self.made += 1;
                let wanted = Wanted {
                    stages: some_of(&STAGES, rng),
                    contributors: some_of(&MEMBERS, rng),
                    destroyed: false,
                };
                let body = json!({"name": name, "stages": wanted.stages, "contributors": wanted.contributors});
                self.environments.insert(name.clone(), wanted);
                let op = api
                    .change(
                        urls,
                        reqwest::Method::POST,
                        &format!("/api/v1/teams/{TEAM}/environments"),
                        &body,
                        &key,
                    )
                    .await;
                (name, "create", op)
            }
            "stages" | "contributors" => {
                let name = live.choose(rng).unwrap().clone();
                let w = self.environments.get_mut(&name).unwrap();
                let body = if action == "stages" {
                    let mut stages = some_of(&STAGES, rng);
                    while stages == w.stages {
                        stages = some_of(&STAGES, rng);
                    }
                    w.stages = stages;
                    json!({"stages": w.stages})
                } else {
                    let mut people = some_of(&MEMBERS, rng);
                    while people == w.contributors {
                        people = some_of(&MEMBERS, rng);
                    }
                    w.contributors = people;
                    json!({"contributors": w.contributors})
                };
                let op = api
                    .change(
                        urls,
                        reqwest::Method::PATCH,
                        &format!("/api/v1/teams/{TEAM}/environments/{name}"),
                        &body,
                        &key,
                    )
                    .await;
                (name, "update", op)
            }
            "destroy" => {
                let name = live.choose(rng).unwrap().clone();
                self.environments.get_mut(&name).unwrap().destroyed = true;
                let op = api
                    .change(
                        urls,
                        reqwest::Method::POST,
                        &format!("/api/v1/teams/{TEAM}/environments/{name}/operations"),
                        &json!({"kind": "destroy"}),
                        &key,
                    )
                    .await;
                (name, "destroy", op)
            }
            _ => {
                let login = *MEMBERS.choose(rng).unwrap();
                let role = if self.roles[login] == "admin" {
                    "contributor"
                } else {
                    "admin"
                };
                let op = self.set_role(api, urls, login, role).await;
                (String::new(), "team", op)
            }
        };
        self.labels.insert(op.clone(), label);
        self.last.insert(target, op.clone());
        Some(op)
    }

    /// Each environment as last requested.
    pub fn expected(&self) -> BTreeMap<String, Wanted> {
        self.environments.clone()
    }

    /// The stacks that must exist: the platform's, the team's, and per environment not
    /// destroyed its repository and its stages.
    pub fn expected_stacks(&self) -> BTreeSet<String> {
        let mut stacks: BTreeSet<String> =
            ["paddock-platform".to_owned(), format!("team-{TEAM}")].into();
        for (name, w) in &self.environments {
            if w.destroyed {
                continue;
            }
            stacks.insert(format!("{TEAM}-{name}"));
            for s in &w.stages {
                stacks.insert(format!("{TEAM}-{name}-{s}"));
            }
        }
        stacks
    }

    /// Each environment as the server shows it.
    pub async fn environments(&self, api: &Api, url: &str) -> BTreeMap<String, Wanted> {
        let mut out = BTreeMap::new();
        for name in self.environments.keys() {
            let (status, env) = api
                .send(
                    reqwest::Method::GET,
                    &format!("{url}/api/v1/teams/{TEAM}/environments/{name}"),
                    None,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{name}: {env}");
            let list = |v: &Json| -> BTreeSet<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            };
            let params = &env["parameters"];
            out.insert(
                name.clone(),
                Wanted {
                    stages: list(&params["stages"]),
                    contributors: list(&params["contributors"]),
                    destroyed: env["status"] == "destroyed",
                },
            );
        }
        out
    }
}

/// A non-empty subset.
fn some_of(all: &[&str], rng: &mut impl Rng) -> BTreeSet<String> {
    loop {
        let chosen: BTreeSet<String> = all
            .iter()
            .filter(|_| rng.gen_bool(0.5))
            .map(|s| (*s).to_owned())
            .collect();
        if !chosen.is_empty() {
            return chosen;
        }
    }
}

/// The events each operation must have, whatever the kills: every attempt starts with
/// `operationStarted`; the operation ends with exactly one `operationFinished`, its last
/// event, naming the state it ended in; and in its last attempt (which no kill cut short)
/// every step that started ended. Returns what is missing.
pub async fn check_events(db: &Db, ops: &[Operation]) -> Vec<String> {
    let mut lost = Vec::new();
    for op in ops {
        let events = db
            .events(Some(&op.id), None, 0, 100_000)
            .await
            .expect("reading events");
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let starts = kinds.iter().filter(|k| **k == "operationStarted").count();
        if starts as i64 != op.attempts {
            lost.push(format!(
                "{}: {} attempts, {starts} operationStarted events",
                op.id, op.attempts
            ));
        }
        let finished: Vec<&paddock_store::db::EventRow> = events
            .iter()
            .filter(|e| e.kind == "operationFinished")
            .collect();
        match finished.as_slice() {
            [one] if events.last().is_some_and(|e| e.kind == "operationFinished") => {
                let data: Json = serde_json::from_str(&one.data).unwrap_or_default();
                if data["state"] != op.state.as_str() {
                    lost.push(format!(
                        "{}: ended {} but its operationFinished says {}",
                        op.id, op.state, data["state"]
                    ));
                }
            }
            other => lost.push(format!(
                "{}: {} operationFinished events, last event {:?}",
                op.id,
                other.len(),
                kinds.last()
            )),
        }
        let last_attempt = events
            .iter()
            .rposition(|e| e.kind == "operationStarted")
            .unwrap_or(0);
        let mut open: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in &events[last_attempt..] {
            let data: Json = serde_json::from_str(&e.data).unwrap_or_default();
            let step = (
                data["stack"].as_str().unwrap_or_default().to_owned(),
                data["resource"].as_str().unwrap_or_default().to_owned(),
            );
            match e.kind.as_str() {
                "stepStarted" => *open.entry(step).or_default() += 1,
                "stepSucceeded" | "stepFailed" => {
                    if let Some(n) = open.get_mut(&step) {
                        *n -= 1;
                    }
                }
                _ => {}
            }
        }
        for ((stack, resource), n) in open {
            if n > 0 {
                lost.push(format!(
                    "{}: {stack}/{resource} started in the last attempt and never ended",
                    op.id
                ));
            }
        }
    }
    lost
}
