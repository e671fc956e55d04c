//! The message descriptors of the cut `generated.proto` files (`specs/kubernetes/proto`),
//! parsed once, and a parser for the subset of proto2 they are written in: `syntax`,
//! `package`, `import`, `message` with `optional`/`repeated`/`map<,>` fields, and the
//! field option `[(inline) = true]` for structs Go embeds.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::ProtoError;

macro_rules! proto_file {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!("../../../specs/kubernetes/proto/", $path)),
        )
    };
}

const FILES: &[(&str, &str)] = &[
    proto_file!("k8s.io/apimachinery/pkg/runtime/generated.proto"),
    proto_file!("k8s.io/apimachinery/pkg/api/resource/generated.proto"),
    proto_file!("k8s.io/apimachinery/pkg/util/intstr/generated.proto"),
    proto_file!("k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"),
    proto_file!("k8s.io/api/core/v1/generated.proto"),
    proto_file!("k8s.io/api/apps/v1/generated.proto"),
    proto_file!("k8s.io/api/rbac/v1/generated.proto"),
    proto_file!("k8s.io/api/networking/v1/generated.proto"),
    proto_file!("k8s.io/api/authentication/v1/generated.proto"),
    proto_file!("k8s.io/api/authorization/v1/generated.proto"),
    proto_file!("k8s.io/api/events/v1/generated.proto"),
];

/// The served messages, by fully qualified name (`k8s.io.api.core.v1.Namespace`).
pub(super) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(FILES).expect("the cut generated.proto files parse"))
}

#[derive(Debug, Default)]
pub(super) struct Schema {
    messages: HashMap<String, Message>,
}

#[derive(Debug)]
pub(super) struct Message {
    pub fields: Vec<Field>,
}

#[derive(Debug)]
pub(super) struct Field {
    /// The field's JSON name.
    pub name: String,
    pub number: u32,
    pub label: Label,
    pub ty: Type,
    /// Go embeds the struct: its fields sit in the parent's JSON object.
    pub inline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Label {
    Optional,
    Repeated,
    /// `map<K, V>`: entries `{1: key, 2: value}` on the wire, an object in JSON.
    Map(Scalar),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Type {
    Scalar(Scalar),
    Message(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    UInt32,
    UInt64,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    fn named(name: &str) -> Option<Scalar> {
        Some(match name {
            "double" => Scalar::Double,
            "float" => Scalar::Float,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "uint32" => Scalar::UInt32,
            "uint64" => Scalar::UInt64,
            "bool" => Scalar::Bool,
            "string" => Scalar::String,
            "bytes" => Scalar::Bytes,
            _ => return None,
        })
    }
}

impl Schema {
    pub(super) fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// Parses `.proto` files, `(path, text)`, and checks every type they name exists.
    pub(super) fn parse(files: &[(&str, &str)]) -> Result<Schema, ProtoError> {
        let mut schema = Schema::default();
        for (path, text) in files {
            Parser::new(path, text).file(&mut schema)?;
        }
        for (name, message) in &schema.messages {
            for field in &message.fields {
                if let Type::Message(t) = &field.ty
                    && !schema.messages.contains_key(t)
                {
                    return Err(ProtoError::Schema(format!(
                        "{name}.{}: no message {t}",
                        field.name
                    )));
                }
            }
        }
        Ok(schema)
    }
}

struct Parser<'a> {
    path: &'a str,
    tokens: Vec<(usize, &'a str)>,
    pos: usize,
}

/// Identifiers (dotted), numbers, quoted strings and single punctuation marks, with
/// their line numbers; `//` comments dropped.
fn tokenize(text: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split_once("//").map_or(line, |(code, _)| code);
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            rest = &rest[start..];
            let len = if let Some(quoted) = rest.strip_prefix('"') {
                quoted.find('"').map_or(rest.len(), |end| end + 2)
            } else if rest.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.') {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len())
            } else {
                rest.chars().next().map_or(1, char::len_utf8)
            };
            tokens.push((n + 1, &rest[..len]));
            rest = &rest[len..];
        }
    }
    tokens
}

impl<'a> Parser<'a> {
    fn new(path: &'a str, text: &'a str) -> Parser<'a> {
        Parser {
            path,
            tokens: tokenize(text),
            pos: 0,
        }
    }

    fn error(&self, why: impl std::fmt::Display) -> ProtoError {
        let line = self
            .tokens
            .get(self.pos.min(self.tokens.len().saturating_sub(1)))
            .map_or(0, |t| t.0);
        ProtoError::Schema(format!("{}:{line}: {why}", self.path))
    }

    fn next(&mut self) -> Result<&'a str, ProtoError> {
        let token = self
            .tokens
            .get(self.pos)
            .map(|t| t.1)
            .ok_or_else(|| self.error("unexpected end of file"))?;
        self.pos += 1;
        Ok(token)
    }

    fn expect(&mut self, wanted: &str) -> Result<(), ProtoError> {
        let got = self.next()?;
        if got == wanted {
            Ok(())
        } else {
            self.pos -= 1;
            Err(self.error(format!("expected {wanted:?}, found {got:?}")))
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).map(|t| t.1)
    }

    fn file(&mut self, schema: &mut Schema) -> Result<(), ProtoError> {
        let mut package = String::new();
        while let Some(token) = self.peek() {
            self.pos += 1;
            match token {
                "syntax" => {
                    self.expect("=")?;
                    let syntax = self.next()?;
                    if syntax != "\"proto2\"" {
                        return Err(self.error(format!("syntax {syntax} is not proto2")));
                    }
                    self.expect(";")?;
                }
                "package" => {
                    package = self.next()?.to_owned();
                    self.expect(";")?;
                }
                "import" => {
                    self.next()?;
                    self.expect(";")?;
                }
                "message" => {
                    let name = self.next()?;
                    let message = self.message(&package)?;
                    schema.messages.insert(format!("{package}.{name}"), message);
                }
                other => return Err(self.error(format!("unexpected {other:?}"))),
            }
        }
        Ok(())
    }

    fn type_name(&self, name: &str, package: &str) -> Type {
        match Scalar::named(name) {
            Some(s) => Type::Scalar(s),
            None => match name.strip_prefix('.') {
                Some(full) => Type::Message(full.to_owned()),
                None => Type::Message(format!("{package}.{name}")),
            },
        }
    }

    fn message(&mut self, package: &str) -> Result<Message, ProtoError> {
        self.expect("{")?;
        let mut fields = Vec::new();
        loop {
            let (label, ty) = match self.next()? {
                "}" => break,
                label @ ("optional" | "repeated") => {
                    let ty = self.type_name(self.peek().unwrap_or_default(), package);
                    self.pos += 1;
                    let label = if label == "optional" {
                        Label::Optional
                    } else {
                        Label::Repeated
                    };
                    (label, ty)
                }
                "map" => {
                    self.expect("<")?;
                    let key = self.next()?;
                    let key = Scalar::named(key)
                        .ok_or_else(|| self.error(format!("map key {key:?} is not a scalar")))?;
                    self.expect(",")?;
                    let value = self.next()?;
                    let ty = self.type_name(value, package);
                    self.expect(">")?;
                    (Label::Map(key), ty)
                }
                other => return Err(self.error(format!("expected a field, found {other:?}"))),
            };
            let name = self.next()?.to_owned();
            self.expect("=")?;
            let number = self.next()?;
            let number = number
                .parse::<u32>()
                .map_err(|_| self.error(format!("field number {number:?}")))?;
            let mut inline = false;
            if self.peek() == Some("[") {
                self.pos += 1;
                for expected in ["(", "inline", ")", "=", "true", "]"] {
                    self.expect(expected)?;
                }
                inline = true;
            }
            self.expect(";")?;
            fields.push(Field {
                name,
                number,
                label,
                ty,
                inline,
            });
        }
        Ok(Message { fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_files_parse_into_the_served_kinds_messages() {
        let schema = schema();
        for kind in [
            "k8s.io.api.core.v1.Namespace",
            "k8s.io.api.core.v1.SecretList",
            "k8s.io.api.apps.v1.Deployment",
            "k8s.io.api.rbac.v1.ClusterRoleBinding",
            "k8s.io.api.networking.v1.NetworkPolicy",
            "k8s.io.api.authentication.v1.TokenRequest",
            "k8s.io.api.authorization.v1.SelfSubjectRulesReview",
            "k8s.io.apimachinery.pkg.apis.meta.v1.Status",
            "k8s.io.apimachinery.pkg.runtime.Unknown",
        ] {
            assert!(schema.message(kind).is_some(), "{kind}");
        }
        let secret = schema.message("k8s.io.api.core.v1.Secret").unwrap();
        let data = secret.fields.iter().find(|f| f.name == "data").unwrap();
        assert_eq!(
            (data.number, data.label, &data.ty),
            (2, Label::Map(Scalar::String), &Type::Scalar(Scalar::Bytes))
        );
        let volume = schema.message("k8s.io.api.core.v1.Volume").unwrap();
        assert!(volume.fields.iter().any(|f| f.inline));
    }

    #[test]
    fn a_malformed_file_is_refused_with_its_line() {
        let err = Schema::parse(&[(
            "x.proto",
            "syntax = \"proto2\";\npackage x;\nmessage A {\n  optional string a = one;\n}\n",
        )])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "protobuf schema: x.proto:4: field number \"one\""
        );
        let err = Schema::parse(&[("y.proto", "package y;\nmessage B { optional C c = 1; }")])
            .unwrap_err();
        assert_eq!(err.to_string(), "protobuf schema: y.B.c: no message y.C");
    }
}
