//! A compiled policy pack: its files, their digest, and a prepared `regorus` engine that
//! each evaluation clones (so evaluations share nothing and run in parallel).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use regorus::Engine;
use regorus::unstable::{Rule, RuleHead};
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::PolicyError;
use crate::decision::{self, Decision};

/// The largest input document evaluated, as JSON bytes. A plan of a whole environment is
/// a few hundred KiB at most; anything larger is refused before Rego sees it.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// How long one rule may run before it is stopped with an error. Policies are small;
/// this only stops a runaway query (a hostile input meeting a careless comprehension).
const TIME_LIMIT: Duration = Duration::from_secs(2);

/// The package every module must declare a child of.
const ROOT: [&str; 2] = ["paddock", "policies"];

/// The optional data document's file name.
const DATA_FILE: &str = "data.json";

/// A compiled policy pack (see the crate's documentation for its convention).
pub struct Pack {
    files: BTreeMap<String, String>,
    digest: String,
    packages: Vec<Package>,
    /// Prepared (analysed) once; cloned under the lock, evaluated outside it.
    engine: Mutex<Engine>,
}

/// One `paddock.policies.<name>` package: which of the decision sets it defines, and its
/// tests.
#[derive(Debug, Default)]
pub(crate) struct Package {
    /// The short name: `<name>`.
    pub(crate) name: String,
    pub(crate) deny: bool,
    pub(crate) approve: bool,
    /// `test_*` rules, with the file that defines each.
    pub(crate) tests: Vec<(String, String)>,
}

impl Package {
    /// The rule's path for `Engine::eval_rule`.
    pub(crate) fn rule_path(&self, rule: &str) -> String {
        format!("data.{}.{rule}", package_path(&self.name))
    }
}

/// `paddock.policies.<name>`.
pub(crate) fn package_path(name: &str) -> String {
    format!("{}.{}.{name}", ROOT[0], ROOT[1])
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("digest", &self.digest)
            .finish()
    }
}

impl Pack {
    /// Reads a pack from a directory: every `*.rego` file and `data.json` directly in it
    /// (other files, such as a README or examples, are not part of the pack).
    pub fn from_dir(dir: &Path) -> Result<Pack, PolicyError> {
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PolicyError::Read { path, source }
        };
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
            let path = entry.map_err(read_error(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if (name.ends_with(".rego") || name == DATA_FILE) && path.is_file() {
                let source = std::fs::read_to_string(&path).map_err(read_error(&path))?;
                files.insert(name.to_owned(), source);
            }
        }
        Pack::from_files(&files)
    }

    /// Compiles a pack from its files (name → content): `*.rego` modules and an optional
    /// `data.json`. Every problem names its file; Rego that does not compile also its line.
    pub fn from_files(files: &BTreeMap<String, String>) -> Result<Pack, PolicyError> {
        let mut engine = Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: TIME_LIMIT,
            check_interval: NonZeroU32::new(64).expect("non-zero"),
        });
        for (name, source) in files {
            check_name(name)?;
            if name == DATA_FILE {
                engine
                    .add_data(data_document(source)?)
                    .map_err(|e| invalid(name, e))?;
            } else {
                engine
                    .add_policy(name.clone(), source.clone())
                    .map_err(|e| compile_error(name, &e))?;
            }
        }
        let packages = packages(&mut engine)?;
        // Analysis (unsafe variables, unknown functions, rule conflicts) happens when the
        // engine is first prepared: do it now, so a pack that exists is a pack that runs.
        engine
            .eval_query("true".to_owned(), false)
            .map_err(|e| compile_error("(pack)", &e))?;
        Ok(Pack {
            digest: digest(files),
            files: files.clone(),
            packages,
            engine: Mutex::new(engine),
        })
    }

    /// The pack's files, name → content.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// `sha256:<hex>` over every file's name and content (length-prefixed, in name order):
    /// two packs with the same digest decide the same.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// Evaluates every package's `deny` and `approve` against `input`.
    pub fn evaluate(&self, input: &Json) -> Result<Decision, PolicyError> {
        let text = serde_json::to_string(input).map_err(|e| PolicyError::Evaluation {
            rule: "input".into(),
            message: e.to_string(),
        })?;
        if text.len() > MAX_INPUT_BYTES {
            return Err(PolicyError::InputTooLarge {
                size: text.len(),
                limit: MAX_INPUT_BYTES,
            });
        }
        let mut engine = self.engine();
        engine.set_input(regorus::Value::from(input.clone()));
        let (mut denials, mut approvals) = (Vec::new(), Vec::new());
        for package in &self.packages {
            for (defined, rule, into) in [
                (package.deny, "deny", &mut denials),
                (package.approve, "approve", &mut approvals),
            ] {
                if defined {
                    let value = eval(&mut engine, &package.rule_path(rule))?;
                    into.extend(decision::reasons(&package.name, rule, &value)?);
                }
            }
        }
        Ok(Decision::from_reasons(denials, approvals))
    }

    pub(crate) fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// A fresh copy of the prepared engine.
    pub(crate) fn engine(&self) -> Engine {
        self.engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Evaluates one rule to JSON; undefined is `null`.
pub(crate) fn eval(engine: &mut Engine, rule: &str) -> Result<Json, PolicyError> {
    let value = engine
        .eval_rule(rule.to_owned())
        .map_err(|e| PolicyError::Evaluation {
            rule: rule.trim_start_matches("data.").to_owned(),
            message: match compile_error("", &e) {
                PolicyError::Compile {
                    file,
                    line,
                    column,
                    message,
                } => format!("{file}:{line}:{column}: {message}"),
                PolicyError::Invalid { message, .. } => message,
                other => other.to_string(),
            },
        })?;
    if value == regorus::Value::Undefined {
        return Ok(Json::Null);
    }
    serde_json::to_value(&value).map_err(|e| PolicyError::Evaluation {
        rule: rule.to_owned(),
        message: e.to_string(),
    })
}

/// File names are flat (no directories) and either `*.rego` or `data.json`.
fn check_name(name: &str) -> Result<(), PolicyError> {
    let flat = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !flat {
        return Err(invalid(
            name,
            "a file name is letters, digits, `_`, `-` and `.` (no directories)",
        ));
    }
    if !(name.ends_with(".rego") && name.len() > ".rego".len()) && name != DATA_FILE {
        return Err(invalid(
            name,
            "a pack holds `*.rego` modules and an optional `data.json` only",
        ));
    }
    Ok(())
}

fn data_document(source: &str) -> Result<regorus::Value, PolicyError> {
    match serde_json::from_str::<Json>(source) {
        Ok(data @ Json::Object(_)) => Ok(regorus::Value::from(data)),
        Ok(_) => Err(invalid(DATA_FILE, "must be a JSON object")),
        Err(e) => Err(invalid(DATA_FILE, format!("not JSON: {e}"))),
    }
}

/// Finds each module's package and the rules that matter: `deny`, `approve`, `test_*`.
fn packages(engine: &mut Engine) -> Result<Vec<Package>, PolicyError> {
    let mut by_name: BTreeMap<String, Package> = BTreeMap::new();
    let components = engine
        .get_policy_package_components()
        .map_err(|e| invalid("", e))?;
    for module in &components {
        let inside = module.components.len() == 3
            && module.components[..2] == ROOT
            && !module.components[2].is_empty();
        if !inside {
            return Err(invalid(
                &module.source_file,
                format!(
                    "the package must be `paddock.policies.<name>`, not `{}`",
                    module.components.join(".")
                ),
            ));
        }
    }
    // Both lists are in the order the modules were added.
    for (module, package_of) in engine.get_modules().iter().zip(&components) {
        let file = &package_of.source_file;
        let name = &package_of.components[2];
        let package = by_name.entry(name.clone()).or_default();
        package.name = name.clone();
        for rule in &module.policy {
            let (refr, is_function) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
                    RuleHead::Func { refr, .. } => (refr, true),
                },
                Rule::Default { refr, .. } => (refr, false),
            };
            match refr.span().text() {
                "deny" => package.deny = true,
                "approve" => package.approve = true,
                test if test.starts_with("test_")
                    && !is_function
                    && !package.tests.iter().any(|(t, _)| t == test) =>
                {
                    package.tests.push((test.to_owned(), file.clone()));
                }
                _ => {}
            }
        }
    }
    if by_name.is_empty() {
        return Err(PolicyError::Empty);
    }
    Ok(by_name.into_values().collect())
}

fn digest(files: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (name, source) in files {
        for part in [name, source] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn invalid(file: &str, message: impl std::fmt::Display) -> PolicyError {
    PolicyError::Invalid {
        file: file.to_owned(),
        message: one_line(&message),
    }
}

/// `regorus` reports a located error as a rendered snippet:
/// `\n--> FILE:LINE:COL\n  |\nN | source\n  |   ^\nerror: MESSAGE`. Read the location back.
fn compile_error(file: &str, e: &dyn std::fmt::Display) -> PolicyError {
    let text = e.to_string();
    let located = text.split_once("--> ").and_then(|(_, rest)| {
        let (location, _) = rest.split_once('\n')?;
        let mut parts = location.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        let file = parts.next()?.to_owned();
        let message = text.lines().last()?.trim();
        let message = message.strip_prefix("error: ").unwrap_or(message);
        Some((file, line, column, message.to_owned()))
    });
    match located {
        Some((file, line, column, message)) => PolicyError::Compile {
            file,
            line,
            column,
            message,
        },
        None => invalid(file, &text),
    }
}

/// Errors rendered on one line (no source snippet) for messages and logs.
fn one_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}
