//! Contract checks against Microsoft Graph's CSDL metadata: an entity may only carry the
//! properties its type (and its base types) declare, with values of the declared kinds.

use std::collections::BTreeMap;

use serde_json::Value;

pub struct Csdl {
    /// Entity type → (base type, property → EDM type).
    types: BTreeMap<String, (Option<String>, BTreeMap<String, String>)>,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[start..start + tag[start..].find('"')?])
}

impl Csdl {
    pub fn load() -> Csdl {
        let path = format!(
            "{}/specs/graph/graph-v1.0.csdl.xml",
            env!("CARGO_MANIFEST_DIR")
        );
        let xml = std::fs::read_to_string(&path).unwrap();
        let mut types = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in xml.lines().map(str::trim) {
            if line.starts_with("<EntityType ") || line.starts_with("<ComplexType ") {
                let name = attr(line, "Name").unwrap().to_owned();
                let base =
                    attr(line, "BaseType").map(|b| b.trim_start_matches("graph.").to_owned());
                types.insert(name.clone(), (base, BTreeMap::new()));
                current = (!line.ends_with("/>")).then_some(name);
            } else if line.starts_with("</EntityType>") || line.starts_with("</ComplexType>") {
                current = None;
            } else if let (Some(t), true) = (
                &current,
                line.starts_with("<Property ") || line.starts_with("<NavigationProperty "),
            ) {
                let (name, ty) = (attr(line, "Name").unwrap(), attr(line, "Type").unwrap());
                types
                    .get_mut(t)
                    .unwrap()
                    .1
                    .insert(name.to_owned(), ty.to_owned());
            }
        }
        Csdl { types }
    }

    fn property(&self, ty: &str, name: &str) -> Option<&str> {
        let (base, props) = self.types.get(ty)?;
        props
            .get(name)
            .map(String::as_str)
            .or_else(|| base.as_deref().and_then(|b| self.property(b, name)))
    }

    fn kind_matches(edm: &str, v: &Value) -> bool {
        if v.is_null() {
            return true;
        }
        match edm {
            t if t.starts_with("Collection(") => v.is_array(),
            "Edm.String" | "Edm.Guid" | "Edm.DateTimeOffset" | "Edm.Binary" | "Edm.Date" => {
                v.is_string()
            }
            "Edm.Boolean" => v.is_boolean(),
            "Edm.Int32" | "Edm.Int64" | "Edm.Double" => v.is_number(),
            t if t.starts_with("graph.") => v.is_object() || v.is_string(),
            _ => true,
        }
    }

    /// Every property of `entity` is declared for `ty` with a value of its kind.
    pub fn check(&self, ty: &str, entity: &Value) -> Result<(), String> {
        assert!(self.types.contains_key(ty), "the metadata has no type {ty}");
        let mut problems = Vec::new();
        for (k, v) in entity.as_object().ok_or("not an object")? {
            if k.starts_with('@') {
                continue;
            }
            match self.property(ty, k) {
                None => problems.push(format!("`{k}` is not a property of {ty}")),
                Some(edm) if !Self::kind_matches(edm, v) => {
                    problems.push(format!("`{k}` should be {edm}, is {v}"))
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{ty}: {}", problems.join("; ")))
        }
    }
}
