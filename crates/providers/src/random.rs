//! `random:string` and `random:uuid`: values generated at create and kept in state until
//! their `keepers` change (as Pulumi's and Terraform's random providers).

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, Provider, ProviderError, Value};
use rand::Rng;

pub struct RandomProvider {
    schemas: Vec<TypeSchema>,
}

impl Default for RandomProvider {
    fn default() -> Self {
        let keepers = PropertySchema::new("keepers", PropertyType::Map)
            .replace_on_change()
            .describe("Arbitrary values that, when changed, generate a new value.");
        RandomProvider {
            schemas: vec![
                TypeSchema {
                    name: "random:string".into(),
                    description: "A random string, secret, generated once.".into(),
                    inputs: vec![
                        PropertySchema::new("length", PropertyType::Int)
                            .required()
                            .replace_on_change(),
                        PropertySchema::new("special", PropertyType::Bool)
                            .replace_on_change()
                            .describe("Include punctuation characters."),
                        keepers.clone(),
                    ],
                    outputs: vec![PropertySchema::new("result", PropertyType::String).secret()],
                },
                TypeSchema {
                    name: "random:uuid".into(),
                    description: "A random version-4 UUID, generated once.".into(),
                    inputs: vec![keepers],
                    outputs: vec![PropertySchema::new("result", PropertyType::String)],
                },
            ],
        }
    }
}

/// A random version-4 UUID (RFC 9562).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::thread_rng().r#gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_string(length: usize, special: bool) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const SPECIAL: &[u8] = b"!#$%&*()-_=+[]{}<>:?";
    let alphabet: Vec<u8> = if special {
        [ALNUM, SPECIAL].concat()
    } else {
        ALNUM.to_vec()
    };
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

#[async_trait]
impl Provider for RandomProvider {
    fn name(&self) -> &str {
        "random"
    }

    fn schemas(&self) -> &[TypeSchema] {
        &self.schemas
    }

    async fn check(&self, ty: &str, inputs: &Props) -> Vec<paddock_engine::provider::CheckFailure> {
        let mut failures = self.schema(ty).map(|s| s.check(inputs)).unwrap_or_default();
        if let Some(len) = inputs.get("length").and_then(Value::as_i64)
            && !(1..=1024).contains(&len)
        {
            failures.push(paddock_engine::provider::CheckFailure {
                property: "length".into(),
                reason: format!("must be between 1 and 1024, got {len}"),
            });
        }
        failures
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let result = match r.ty {
            "random:uuid" => uuid_v4(),
            "random:string" => {
                let length = inputs.get("length").and_then(Value::as_i64).unwrap_or(16) as usize;
                let special = inputs
                    .get("special")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                random_string(length, special)
            }
            other => {
                return Err(ProviderError::new(
                    "UnknownType",
                    format!("random has no type `{other}`"),
                ));
            }
        };
        // The id of a uuid is the uuid; a string's id must not reveal the secret.
        let id = if r.ty == "random:uuid" {
            result.clone()
        } else {
            r.token.to_owned()
        };
        Ok(Created {
            id,
            outputs: Props::from([("result".to_owned(), Value::String(result))]),
        })
    }

    async fn read(
        &self,
        ty: &str,
        id: &str,
        prior: &Props,
    ) -> Result<Option<ReadResult>, ProviderError> {
        let result = match (prior.get("result"), ty) {
            (Some(v), _) => v.clone(),
            (None, "random:uuid") => Value::String(id.to_owned()),
            (None, _) => {
                return Err(ProviderError::new(
                    "NotImportable",
                    "a random string cannot be imported: its value exists only in state",
                ));
            }
        };
        Ok(Some(ReadResult {
            inputs: None,
            outputs: Props::from([("result".to_owned(), result)]),
        }))
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        _id: &str,
        _olds: &Props,
        _news: &Props,
    ) -> Result<Props, ProviderError> {
        Err(ProviderError::new(
            "NotUpdatable",
            format!("`{}` is replaced, never updated in place", r.ty),
        ))
    }

    async fn delete(&self, _ty: &str, _id: &str, _props: &Props) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn find(
        &self,
        _r: ResourceRef<'_>,
        _inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        // Nothing exists outside state: a create that was never recorded left nothing behind.
        Ok(None)
    }
}
