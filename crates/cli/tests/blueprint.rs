//! Blueprints: parameters, interpolation, and errors that name file, line and field.

mod common;

use std::collections::BTreeMap;

use paddock_engine::blueprint::{Blueprint, parse_values};
use paddock_engine::{DesiredGraph, Expr, Value};

const GOOD: &str = r#"
name: env
version: 1.2.0
parameters:
  team: { type: string, pattern: "^[a-z]+$" }
  replicas: { type: int, min: 1, max: 5, default: 2 }
  stages: { type: list, values: [dev, test, prod], default: [dev] }
  size: { type: enum, values: [small, large], default: small }
  public: { type: bool, default: false }
  token: { type: string, secret: true, default: s3cret }
resources:
  rg:
    type: test:resource
    properties:
      name: rg-${team}
      size: ${replicas}
      tags: { stages: "${stages}", literal: "$${not-a-ref}" }
  app:
    type: test:resource
    properties:
      name: app-${team}
      parent: ${rg.id}
      data: { url: "${rg.url}", first: "${rg.tags.stages.0}" }
      password: ${token}
    dependsOn: [rg]
outputs:
  rg: ${rg.name}
  token: { value: "${token}", secret: true }
"#;

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

fn render(text: &str, params: &[(&str, &str)]) -> Result<DesiredGraph, String> {
    let bp = Blueprint::parse("env.yaml", text).map_err(|d| d.to_string())?;
    bp.render(&values(params)).map_err(|d| d.to_string())
}

/// Parses, renders and validates against the built-in providers' schemas.
async fn check(text: &str, params: &[(&str, &str)]) -> String {
    let rig = common::Rig::new().await;
    match render(text, params) {
        Err(e) => e,
        Ok(graph) => match graph.validate(rig.engine.providers()) {
            Ok(_) => "valid".into(),
            Err(d) => d.to_string(),
        },
    }
}

#[test]
fn parameters_bind_with_types_defaults_and_secrecy() {
    let graph = render(GOOD, &[("team", "payments"), ("replicas", "3")]).unwrap();
    let rg = &graph.resources[0];
    assert_eq!(
        rg.properties["name"],
        Expr::Concat(vec![Expr::from("rg-"), Expr::from("payments")])
    );
    assert_eq!(
        rg.properties["size"],
        Expr::Literal(Value::Int(3)),
        "a lone reference keeps its type"
    );
    let Expr::Map(tags) = &rg.properties["tags"] else {
        panic!()
    };
    assert_eq!(
        tags["stages"],
        Expr::Literal(Value::List(vec!["dev".into()]))
    );
    assert_eq!(tags["literal"], Expr::from("${not-a-ref}"));
    let app = &graph.resources[1];
    assert_eq!(
        app.properties["password"],
        Expr::Literal(Value::secret("s3cret".into()))
    );
    assert_eq!(app.properties["parent"], Expr::reference("rg", &["id"]));
    assert!(graph.outputs.iter().any(|o| o.name == "token" && o.secret));
}

#[tokio::test]
async fn a_good_blueprint_validates() {
    assert_eq!(check(GOOD, &[("team", "payments")]).await, "valid");
}

#[tokio::test]
async fn nested_fields_of_outputs_resolve_at_apply() {
    let rig = common::Rig::new().await;
    let graph = render(GOOD, &[("team", "payments"), ("stages", "test,prod")]).unwrap();
    let report = rig
        .engine
        .up("dev", &graph, &paddock_engine::Discard, &Default::default())
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    let state = rig.engine.read_state("dev").await.unwrap();
    let app = state.resources.iter().find(|r| r.name == "app").unwrap();
    let rg = state.resources.iter().find(|r| r.name == "rg").unwrap();
    let Value::Map(data) = &app.inputs["data"] else {
        panic!()
    };
    assert_eq!(data["first"], Value::from("test"));
    assert_eq!(data["url"], rg.outputs["url"]);
}

/// Each invalid blueprint (a change to GOOD) and the error it must produce.
const BROKEN: &[(&str, &str, &str)] = &[
    ("unknown_reference", "parent: ${rg.id}", "parent: ${rgx.id}"),
    (
        "parameter_with_a_path",
        "name: rg-${team}",
        "name: rg-${team.name}",
    ),
    (
        "unterminated_interpolation",
        "name: rg-${team}",
        "name: rg-${team",
    ),
    ("typo_in_a_top_level_key", "resources:", "resourcs:"),
    (
        "typo_in_an_option",
        "dependsOn: [rg]",
        "dependsOn: [rg]\n    options: { protected: true }",
    ),
    ("type_mismatch", "size: ${replicas}", "size: big"),
    ("unknown_property", "size: ${replicas}", "sise: ${replicas}"),
    (
        "unknown_type",
        "type: test:resource\n    properties:\n      name: app",
        "type: test:bucket\n    properties:\n      name: app",
    ),
    ("cycle", "name: rg-${team}", "name: rg-${app.name}"),
    ("unknown_dependency", "dependsOn: [rg]", "dependsOn: [rgg]"),
    ("bad_default", "default: 2 }", "default: 9 }"),
    ("bad_yaml", "team: { type: string", "team: { type: [string"),
];

#[tokio::test]
async fn errors_name_file_line_and_field() {
    for (name, from, to) in BROKEN {
        assert!(GOOD.contains(from), "{name}: {from:?} not in GOOD");
        let text = GOOD.replacen(from, to, 1);
        let error = check(&text, &[("team", "payments")]).await;
        insta::assert_snapshot!(format!("blueprint_{name}"), error);
    }
}

#[tokio::test]
async fn parameter_values_are_checked_against_their_declaration() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("missing_required", &[]),
        ("pattern", &[("team", "Pay_ments")]),
        ("below_min", &[("team", "a"), ("replicas", "0")]),
        ("not_an_int", &[("team", "a"), ("replicas", "many")]),
        ("not_in_enum", &[("team", "a"), ("size", "huge")]),
        (
            "list_item_not_allowed",
            &[("team", "a"), ("stages", "dev,qa")],
        ),
        ("not_a_bool", &[("team", "a"), ("public", "maybe")]),
        (
            "unknown_parameter",
            &[("team", "a"), ("region", "westeurope")],
        ),
    ];
    for (name, params) in cases {
        insta::assert_snapshot!(format!("param_{name}"), check(GOOD, params).await);
    }
}

#[test]
fn parameter_files_hold_typed_values() {
    let v = parse_values(
        "params.yaml",
        "team: payments\nreplicas: 3\nstages: [dev, prod]\npublic: true\n",
    )
    .unwrap();
    assert_eq!(v["replicas"], Value::Int(3));
    assert_eq!(v["stages"], Value::List(vec!["dev".into(), "prod".into()]));
    assert_eq!(v["public"], Value::Bool(true));
    let graph = Blueprint::parse("env.yaml", GOOD)
        .unwrap()
        .render(&v)
        .unwrap();
    assert_eq!(
        graph.resources[0].properties["size"],
        Expr::Literal(Value::Int(3))
    );
    let err = parse_values("params.yaml", "team: ${other}\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "params.yaml:1:7: `team`: a parameter value must be a plain value, without references"
    );
}

#[test]
fn quoted_scalars_are_strings_as_yaml_says() {
    let text = "name: q\nversion: 1.0.0\nparameters:\n  cpu: { type: string, default: \"4\" }\n\
                resources:\n  r:\n    type: test:resource\n    properties: { name: \"10\", size: 10 }\n";
    let graph = Blueprint::parse("q.yaml", text)
        .unwrap()
        .render(&BTreeMap::new())
        .unwrap();
    let props = &graph.resources[0].properties;
    assert_eq!(props["name"], Expr::Literal(Value::String("10".into())));
    assert_eq!(props["size"], Expr::Literal(Value::Int(10)));
    let v = parse_values("params.yaml", "cpu: \"8\"\nreplicas: 8\n").unwrap();
    assert_eq!(v["cpu"], Value::String("8".into()));
    assert_eq!(v["replicas"], Value::Int(8));
}

#[test]
fn the_parameter_schema_renders_a_form() {
    let bp = Blueprint::parse("env.yaml", GOOD).unwrap();
    insta::assert_json_snapshot!("parameter_schema", bp.parameters);
}
