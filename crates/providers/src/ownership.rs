//! Who made an object. Everything Paddock creates carries a mark naming its stack and
//! the creation token the engine journaled before the create was sent: tags on Azure
//! objects, labels and annotations on Kubernetes objects, Graph `tags` or a suffix of a
//! free-text field (`description`) on Entra and GitHub objects, where the API has no
//! tags. A create that meets an object at its natural key takes it over only if it
//! carries this stack's mark; recovery adopts only what carries this create's token; a
//! destroy deletes only what carries the mark, or what the state says was imported, and
//! checks every object before it deletes any (`confirm_owned`). A mark the team may remove
//! (its resource group's tags) is written back when something it cannot write vouches
//! for the object (the lock Paddock placed on the group, whose notes carry the mark).
//! Anything else is someone else's: the create fails with [`conflict`], naming the object
//! and how to import it deliberately.

use paddock_engine::ProviderError;
use paddock_engine::provider::ResourceRef;
use serde_json::Value as Json;

/// Azure tag names and Graph tag prefixes (`paddock-stack=…`).
pub const STACK_KEY: &str = "paddock-stack";
pub const TOKEN_KEY: &str = "paddock-creation-token";
/// Kubernetes' recommended label, and Paddock's annotations.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "paddock";
pub const STACK_ANNOTATION: &str = "paddock.dev/stack";
pub const TOKEN_ANNOTATION: &str = "paddock.dev/creation-token";
/// How a mark starts in a free-text field.
const TEXT_START: &str = "[paddock stack=";

/// The stack and creation token an object was made by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub stack: String,
    pub token: String,
}

/// What an object at a natural key (or an id) says about who made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No such object.
    Gone,
    /// An object that lives only inside another Paddock owns (a repository's environment,
    /// a rolebinding in its namespace): it follows its parent's mark.
    Parent,
    /// It carries no Paddock mark.
    Unmarked,
    Marked(Mark),
}

impl Mark {
    /// The mark a create (or update) for `r` writes.
    pub fn of(r: &ResourceRef<'_>) -> Mark {
        Mark {
            stack: r.stack().to_owned(),
            token: r.token.to_owned(),
        }
    }

    /// A mark from its two fields, if the stack is there.
    pub fn from_parts(stack: Option<&str>, token: Option<&str>) -> Option<Mark> {
        Some(Mark {
            stack: stack.filter(|s| !s.is_empty())?.to_owned(),
            token: token.unwrap_or_default().to_owned(),
        })
    }

    /// The mark as the end of a free-text field: `[paddock stack=S token=T]`.
    pub fn text(&self) -> String {
        format!("{TEXT_START}{} token={}]", self.stack, self.token)
    }

    /// `text` (a description the user gave, or none) with this mark at its end.
    pub fn append_to(&self, text: Option<&str>) -> String {
        match text.map(str::trim_end).filter(|t| !t.is_empty()) {
            Some(t) => format!("{t} {}", self.text()),
            None => self.text(),
        }
    }

    /// A free-text field split into the user's part and the mark at its end, if any.
    pub fn split(text: &str) -> (String, Option<Mark>) {
        let Some(at) = text.rfind(TEXT_START) else {
            return (text.to_owned(), None);
        };
        let Some(inner) = text[at + TEXT_START.len()..].strip_suffix(']') else {
            return (text.to_owned(), None);
        };
        match inner.split_once(" token=") {
            Some((stack, token)) if !stack.is_empty() && !token.contains(' ') => (
                text[..at].trim_end().to_owned(),
                Some(Mark {
                    stack: stack.to_owned(),
                    token: token.to_owned(),
                }),
            ),
            _ => (text.to_owned(), None),
        }
    }

    /// The mark as entries of a list of tags (Graph's `tags`): `paddock-stack=S`,
    /// `paddock-creation-token=T`.
    pub fn tag_list(&self) -> [String; 2] {
        [
            format!("{STACK_KEY}={}", self.stack),
            format!("{TOKEN_KEY}={}", self.token),
        ]
    }

    /// The mark a list of tags carries.
    pub fn from_tag_list(tags: &Json) -> Option<Mark> {
        let value = |key: &str| {
            tags.as_array()?.iter().find_map(|t| {
                t.as_str()?
                    .strip_prefix(key)?
                    .strip_prefix('=')
                    .map(str::to_owned)
            })
        };
        Mark::from_parts(value(STACK_KEY).as_deref(), value(TOKEN_KEY).as_deref())
    }

    /// `tags` without any mark, with this one.
    pub fn into_tag_list(&self, tags: &Json) -> Json {
        let mut kept = unmarked_tag_list(tags);
        kept.extend(self.tag_list().map(Json::String));
        Json::Array(kept)
    }
}

/// The entries of a list of tags that are not Paddock's mark.
pub fn unmarked_tag_list(tags: &Json) -> Vec<Json> {
    let marked = |t: &Json| {
        t.as_str().is_some_and(|t| {
            [STACK_KEY, TOKEN_KEY]
                .iter()
                .any(|k| t.strip_prefix(k).is_some_and(|v| v.starts_with('=')))
        })
    };
    tags.as_array()
        .into_iter()
        .flatten()
        .filter(|t| !marked(t))
        .cloned()
        .collect()
}

/// The owner a free-text field names (`Unmarked` without a mark).
pub fn owner_in_text(text: Option<&str>) -> Owner {
    match Mark::split(text.unwrap_or_default()).1 {
        Some(mark) => Owner::Marked(mark),
        None => Owner::Unmarked,
    }
}

/// The owner an object's mark names, `Unmarked` when it has none.
pub fn owner_of(mark: Option<Mark>) -> Owner {
    mark.map_or(Owner::Unmarked, Owner::Marked)
}

/// Where an object is, for the messages that name it: its type, its name, and the
/// subscription, organization, directory or cluster it lives in, with its id for import.
pub struct Place {
    pub ty: String,
    pub name: String,
    pub location: String,
    pub id: String,
}

impl Owner {
    /// Whether a create for `r` may take this object over: it is gone, lives inside an
    /// object Paddock owns, or carries the mark of `r`'s stack (a create of this stack
    /// that was retried, or whose object recovery could not see yet).
    pub fn admits(&self, r: &ResourceRef<'_>) -> bool {
        match self {
            Owner::Gone | Owner::Parent => true,
            Owner::Marked(m) => m.stack == r.stack(),
            Owner::Unmarked => false,
        }
    }

    /// Whether this is the object the create `r` made (recovery adopts only that).
    pub fn made_by(&self, r: &ResourceRef<'_>) -> bool {
        match self {
            Owner::Parent => true,
            Owner::Marked(m) => m.stack == r.stack() && m.token == r.token,
            Owner::Gone | Owner::Unmarked => false,
        }
    }

    /// Whether a destroy of `r` may delete this object.
    pub fn may_delete(&self, r: &ResourceRef<'_>) -> bool {
        r.imported || self.admits(r)
    }

    fn whose(&self) -> String {
        match self {
            Owner::Marked(m) => format!("it belongs to Paddock stack `{}`", m.stack),
            _ => "it carries no Paddock ownership mark".to_owned(),
        }
    }
}

/// Fails a create for `r` unless `owner`, found at the natural key, admits it.
pub fn admit(r: &ResourceRef<'_>, owner: &Owner, place: &Place) -> Result<(), ProviderError> {
    if owner.admits(r) {
        Ok(())
    } else {
        Err(conflict(r, owner, place))
    }
}

/// The error of a create that found someone else's object at its natural key.
pub fn conflict(r: &ResourceRef<'_>, owner: &Owner, place: &Place) -> ProviderError {
    ProviderError::new(
        "OwnershipConflict",
        format!(
            "{} `{}` already exists in {} and was not made by Paddock stack `{}`: {}",
            place.ty,
            place.name,
            place.location,
            r.stack(),
            owner.whose()
        ),
    )
    .with_hint(format!(
        "Paddock never adopts what it did not make: give the resource another name, or take the object over deliberately with `paddock import --stack {} {} {} {}`",
        r.stack(),
        place.ty,
        r.name(),
        place.id
    ))
}

/// The error of a destroy that found an object Paddock did not make at a recorded id.
pub fn not_owned(r: &ResourceRef<'_>, owner: &Owner, id: &str) -> ProviderError {
    ProviderError::new(
        "NotOwned",
        format!(
            "{} `{id}` was not deleted: {}, and stack `{}` did not import it",
            r.ty,
            owner.whose(),
            r.stack()
        ),
    )
    .with_hint(
        "the object at this id is not the one Paddock made (it was replaced, or its mark removed): delete it by hand if it is no longer needed, then run `paddock refresh`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r<'a>(urn: &'a str, token: &'a str) -> ResourceRef<'a> {
        ResourceRef {
            ty: "azure:resourceGroup",
            urn,
            token,
            imported: false,
        }
    }

    #[test]
    fn a_mark_in_text_reads_back_and_leaves_the_users_text() {
        let mark = Mark {
            stack: "team-a.dev".into(),
            token: "0f3a".into(),
        };
        let text = mark.append_to(Some("Payments"));
        assert_eq!(text, "Payments [paddock stack=team-a.dev token=0f3a]");
        assert_eq!(Mark::split(&text), ("Payments".into(), Some(mark.clone())));
        assert_eq!(
            Mark::split(&mark.append_to(None)),
            (String::new(), Some(mark))
        );
        assert_eq!(Mark::split("[paddock stack= token=x]").1, None);
        assert_eq!(
            Mark::split("Payments [paddock"),
            ("Payments [paddock".into(), None)
        );
    }

    #[test]
    fn tag_lists_keep_what_is_not_the_mark() {
        let mark = Mark {
            stack: "s".into(),
            token: "t".into(),
        };
        let tags = serde_json::json!(["HideApp", "paddock-stack=old", "paddock-stackish"]);
        let marked = mark.into_tag_list(&tags);
        assert_eq!(
            marked,
            serde_json::json!([
                "HideApp",
                "paddock-stackish",
                "paddock-stack=s",
                "paddock-creation-token=t"
            ])
        );
        assert_eq!(Mark::from_tag_list(&marked), Some(mark));
        assert_eq!(
            Mark::from_tag_list(&tags).map(|m| m.stack),
            Some("old".into())
        );
    }

    #[test]
    fn a_stack_takes_over_its_own_objects_and_recovery_only_its_creates() {
        let this = r("paddock:env-a:azure:resourceGroup:rg", "t1");
        let mine = Owner::Marked(Mark {
            stack: "env-a".into(),
            token: "t0".into(),
        });
        assert!(mine.admits(&this) && !mine.made_by(&this));
        let theirs = Owner::Marked(Mark {
            stack: "env-b".into(),
            token: "t1".into(),
        });
        assert!(!theirs.admits(&this) && !theirs.made_by(&this));
        assert!(!Owner::Unmarked.admits(&this) && !Owner::Unmarked.may_delete(&this));
        let imported = ResourceRef {
            imported: true,
            ..this.clone()
        };
        assert!(Owner::Unmarked.may_delete(&imported));
        assert_eq!(this.stack(), "env-a");
        assert_eq!(this.name(), "rg");
    }
}
