//! A version of the `environment` blueprint as everything that renders it: the request's
//! parameters (`environment.yaml`) and the stacks' blueprints (`environment/repository.yaml`,
//! `environment/stage.yaml`), parsed. The compiled-in files are the shipped bundle; others
//! are published through the server and kept in its database, so an environment is always
//! rendered with the version it is on (or the one it is being upgraded to).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use paddock_engine::ProviderRegistry;
use paddock_engine::blueprint::{Blueprint, ParamType};
use paddock_engine::graph::{Diagnostic, Diagnostics, Site};

use crate::{EnvironmentSpec, QuotaSize, Settings, Stage};

/// The request's parameters: what a developer asks for.
pub const REQUEST_FILE: &str = "environment.yaml";
/// The repository stack's blueprint.
pub const REPOSITORY_FILE: &str = "environment/repository.yaml";
/// One stage's stack blueprint.
pub const STAGE_FILE: &str = "environment/stage.yaml";
/// Every file of a bundle, by its path under `blueprints/`.
pub const BUNDLE_FILES: [&str; 3] = [REQUEST_FILE, REPOSITORY_FILE, STAGE_FILE];

/// The parameters the platform maps onto an environment's stacks, with their types: a
/// published version must declare exactly these (descriptions, defaults, patterns and
/// limits may change).
const PLATFORM_PARAMETERS: [(&str, ParamType); 5] = [
    ("stages", ParamType::List),
    ("region", ParamType::String),
    ("quota", ParamType::Enum),
    ("admins", ParamType::List),
    ("contributors", ParamType::List),
];

/// An `environment` blueprint version, parsed.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Path → YAML text, as published.
    pub files: BTreeMap<String, String>,
    pub request: Blueprint,
    pub repository: Blueprint,
    pub stage: Blueprint,
}

impl Bundle {
    /// The bundle compiled into this binary.
    pub fn shipped() -> &'static Arc<Bundle> {
        static SHIPPED: OnceLock<Arc<Bundle>> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            let files = BTreeMap::from([
                (
                    REQUEST_FILE.to_owned(),
                    crate::ENVIRONMENT_BLUEPRINT.to_owned(),
                ),
                (
                    REPOSITORY_FILE.to_owned(),
                    crate::REPOSITORY_BLUEPRINT.to_owned(),
                ),
                (STAGE_FILE.to_owned(), crate::STAGE_BLUEPRINT.to_owned()),
            ]);
            Arc::new(Bundle::parse(files).expect("the shipped blueprints parse (tested)"))
        })
    }

    /// Parses every file of a bundle; a missing or unknown file and every problem of every
    /// file are reported at once, each at its file and line.
    pub fn parse(files: BTreeMap<String, String>) -> Result<Bundle, Diagnostics> {
        let mut diags = Vec::new();
        for name in files.keys() {
            if !BUNDLE_FILES.contains(&name.as_str()) {
                diags.push(at_file(
                    name,
                    format!(
                        "not a file of the environment blueprint (its files: {})",
                        BUNDLE_FILES.join(", ")
                    ),
                ));
            }
        }
        let mut parsed = Vec::new();
        for file in BUNDLE_FILES {
            match files.get(file) {
                None => diags.push(at_file(file, "missing: every file of the bundle is needed")),
                Some(text) => match Blueprint::parse(file, text) {
                    Ok(b) => parsed.push(b),
                    Err(d) => diags.extend(d.0),
                },
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        let [request, repository, stage]: [Blueprint; 3] =
            parsed.try_into().expect("three files parsed");
        Ok(Bundle {
            files,
            request,
            repository,
            stage,
        })
    }

    /// The version: the request blueprint's.
    pub fn version(&self) -> &str {
        &self.request.version
    }

    /// Whether this bundle can be published after `previous`: the request is named
    /// `environment`, declares no resources, has a semantic version, and declares the
    /// platform's parameters with their types; an enum's or a list's allowed values keep
    /// every value `previous` allowed (so no environment's stored values become invalid);
    /// and an environment with every stage renders into graphs the providers accept.
    pub fn check(
        &self,
        previous: Option<&Bundle>,
        settings: &Settings,
        providers: &ProviderRegistry,
    ) -> Result<(), Diagnostics> {
        let mut diags = Vec::new();
        let request = &self.request;
        let top = |field: &str| Site {
            file: Some(request.file.clone()),
            ..Site::field(field)
        };
        if request.name != "environment" {
            diags.push(Diagnostic {
                site: top("name"),
                message: format!(
                    "the request blueprint is `environment`, not `{}`",
                    request.name
                ),
            });
        }
        if Version::parse(&request.version).is_none() {
            diags.push(Diagnostic {
                site: top("version"),
                message: format!(
                    "`{}` is not a semantic version (MAJOR.MINOR.PATCH)",
                    request.version
                ),
            });
        }
        if !request.resources().is_empty() {
            diags.push(Diagnostic {
                site: top("resources"),
                message: "the request declares parameters only; resources belong in \
                          environment/repository.yaml and environment/stage.yaml"
                    .into(),
            });
        }
        for (name, ty) in PLATFORM_PARAMETERS {
            match request.parameters.iter().find(|p| p.name == name) {
                None => diags.push(Diagnostic {
                    site: top(&format!("parameters.{name}")),
                    message: format!(
                        "missing: the platform maps `{name}` onto the stacks, so every \
                         version declares it"
                    ),
                }),
                Some(p) if p.ty != ty => diags.push(Diagnostic {
                    site: p.site.clone(),
                    message: format!(
                        "`{name}` is a {ty:?} parameter in every version; a version may not \
                         change its type",
                    )
                    .to_lowercase(),
                }),
                Some(p) => {
                    let before =
                        previous.and_then(|b| b.request.parameters.iter().find(|q| q.name == name));
                    if let Some(before) = before
                        && !p.values.is_empty()
                    {
                        let dropped: Vec<&str> = before
                            .values
                            .iter()
                            .filter(|v| !p.values.contains(v))
                            .map(String::as_str)
                            .collect();
                        if !dropped.is_empty() || before.values.is_empty() {
                            diags.push(Diagnostic {
                                site: p.site.clone(),
                                message: format!(
                                    "`{name}` no longer allows {}, which environments on \
                                     {} may hold; keep every value the previous version \
                                     allowed",
                                    if dropped.is_empty() {
                                        "any value".to_owned()
                                    } else {
                                        dropped.join(", ")
                                    },
                                    before_version(previous)
                                ),
                            });
                        }
                    }
                }
            }
        }
        for p in &request.parameters {
            if !PLATFORM_PARAMETERS.iter().any(|(n, _)| *n == p.name) {
                diags.push(Diagnostic {
                    site: p.site.clone(),
                    message: format!(
                        "unknown parameter `{}`: the platform maps only {} onto the stacks",
                        p.name,
                        PLATFORM_PARAMETERS.map(|(n, _)| n).join(", ")
                    ),
                });
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        // Render an environment with every stage: what the stacks' blueprints need from
        // the platform, and what the providers accept.
        let sample = EnvironmentSpec {
            team: "sample".into(),
            app: "app".into(),
            stages: Stage::ALL.to_vec(),
            admins: vec!["admin".into()],
            contributors: Vec::new(),
            region: "westeurope".into(),
            quota: QuotaSize::Medium,
        };
        match self.environment_stacks(&sample, settings) {
            Err(crate::PlatformError::Invalid(d)) => diags.extend(d.0),
            Err(crate::PlatformError::Engine(e)) => diags.push(at_file(STAGE_FILE, e.to_string())),
            Ok(runs) => {
                for run in &runs {
                    if let Err(d) = run.graph.validate(providers) {
                        diags.extend(d.0);
                    }
                }
            }
        }
        if diags.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(diags))
        }
    }
}

fn before_version(previous: Option<&Bundle>) -> String {
    previous.map_or_else(|| "earlier versions".into(), |b| b.version().to_owned())
}

fn at_file(file: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        site: Site {
            file: Some(file.into()),
            ..Site::field("")
        },
        message: message.into(),
    }
}

/// A semantic version's numbers, ordered as versions are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// `MAJOR.MINOR.PATCH`, numbers only.
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| {
            (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        });
        let v = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The newest of some version strings (those that are not semantic versions sort first).
pub fn newest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions.into_iter().max_by_key(|v| Version::parse(v))
}

/// Whether `a` is older than `b` as versions.
pub fn older(a: &str, b: &str) -> bool {
    Version::parse(a) < Version::parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_files() -> BTreeMap<String, String> {
        Bundle::shipped().files.clone()
    }

    #[test]
    fn versions_order_as_numbers_and_refuse_anything_else() {
        assert!(Version::parse("1.10.0") > Version::parse("1.9.3"));
        assert_eq!(Version::parse("2.0.0"), Some(Version(2, 0, 0)));
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "1.0.0-rc1", "", "1..0"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert_eq!(newest(["1.1.0", "1.10.0", "1.9.0"]), Some("1.10.0"));
        assert!(older("1.1.0", "2.0.0") && !older("2.0.0", "2.0.0"));
    }

    #[test]
    fn a_missing_or_unknown_file_is_named() {
        let mut files = shipped_files();
        files.remove(STAGE_FILE);
        files.insert("environment/extra.yaml".into(), "name: x".into());
        let err = Bundle::parse(files).unwrap_err().to_string();
        assert!(err.contains("environment/stage.yaml: missing"), "{err}");
        assert!(err.contains("environment/extra.yaml: not a file"), "{err}");
    }

    #[test]
    fn a_broken_file_is_reported_at_its_line() {
        let mut files = shipped_files();
        let stage = files[STAGE_FILE].replacen("type: azure:resourceGroup", "tipe: x", 1);
        files.insert(STAGE_FILE.into(), stage);
        let err = Bundle::parse(files).unwrap_err();
        let d = &err.0[0];
        assert_eq!(d.site.file.as_deref(), Some(STAGE_FILE));
        assert!(d.site.line > 1, "{err}");
    }

    #[test]
    fn a_version_that_drops_a_value_or_renames_a_parameter_is_incompatible() {
        let shipped = Bundle::shipped();
        let mut files = shipped_files();
        let request = files[REQUEST_FILE]
            .replace("values: [small, medium, large]", "values: [medium, large]")
            .replace("  region:", "  location:");
        files.insert(REQUEST_FILE.into(), request);
        let bundle = Bundle::parse(files).unwrap();
        let settings = crate::tests_support::settings();
        let err = bundle
            .check(Some(shipped), &settings, &ProviderRegistry::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no longer allows small"), "{err}");
        assert!(err.contains("`parameters.region`: missing"), "{err}");
        assert!(err.contains("unknown parameter `location`"), "{err}");
    }
}
