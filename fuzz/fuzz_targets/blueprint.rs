//! The blueprint parser on arbitrary text: `Blueprint::parse`, `parse_values` (a
//! `--params-file`) and `Expr::template` (every string in a blueprint).
//!
//! Properties: no panic; every input is decided within the time bound; a refusal has at
//! least one diagnostic, each on a line of the text; a blueprint that parses has unique
//! parameter names and renders with its defaults or says which required parameter is
//! missing; a template prints back to text that parses to the same expression.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use paddock_engine::Expr;
use paddock_engine::blueprint::{Blueprint, parse_values};
use paddock_fuzz::{bounded, print_template};

fuzz_target!(|text: &str| {
    let lines = paddock_fuzz::yaml_lines(text);
    let parsed = bounded("parsing a blueprint", || {
        Blueprint::parse("fuzz.yaml", text)
    });
    match parsed {
        Err(diagnostics) => {
            assert!(!diagnostics.0.is_empty(), "a refusal says why");
            for d in &diagnostics.0 {
                assert!(d.site.line <= lines, "{d} is past the text's {lines} lines");
            }
        }
        Ok(blueprint) => {
            let mut names: Vec<&str> = blueprint
                .parameters
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            names.sort_unstable();
            let count = names.len();
            names.dedup();
            assert_eq!(names.len(), count, "parameter names are unique");
            let rendered = bounded("rendering a blueprint", || {
                blueprint.render(&BTreeMap::new())
            });
            let required: Vec<&str> = blueprint
                .parameters
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name.as_str())
                .collect();
            match rendered {
                Ok(_) => assert!(required.is_empty(), "rendered without {required:?}"),
                Err(e) => assert!(
                    required
                        .iter()
                        .any(|name| e.to_string().contains(&format!("`{name}` is required")))
                        || e.0.iter().any(|d| d.message.contains("stack reference")),
                    "an unexpected refusal to render: {e}"
                ),
            }
        }
    }
    if parse_values("values.yaml", text).is_err() {
        // Refused with diagnostics; nothing more to check.
    }
    if let Ok(expr) = Expr::template(text) {
        let printed = print_template(&expr);
        assert_eq!(
            Expr::template(&printed).as_ref(),
            Ok(&expr),
            "{text:?} printed as {printed:?}"
        );
    }
});
