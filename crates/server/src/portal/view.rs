//! What every page's template shares: the layout's data ([`Chrome`]), status words and
//! their colours ([`Status`]), times ([`When`]), pagers and field errors.
//!
//! Invariant: one word maps to one colour group everywhere (ready, running, waiting,
//! failed, drifted, expiring, destroyed); templates never pick a colour themselves.

use paddock_store::db::now_ms;

use crate::auth::Caller;
use crate::problem::FieldError;
use crate::views::time;

use super::assets::{AssetUrls, urls};

/// A link in the breadcrumbs; the last one is the current page.
#[derive(Clone, Debug)]
pub(crate) struct Crumb {
    pub label: String,
    pub href: String,
}

/// The layout's data: who is signed in, their teams, where we are.
#[derive(Clone, Debug)]
pub(crate) struct Chrome {
    pub title: String,
    pub login: Option<String>,
    pub csrf: String,
    /// The viewer's teams, for the switcher.
    pub teams: Vec<String>,
    /// The team this page is about.
    pub team: Option<String>,
    pub crumbs: Vec<Crumb>,
    pub platform_admin: bool,
    /// Which top-level section is current (`home`, `teams`, `blueprints`, `people`, `audit`, `policies`).
    pub section: &'static str,
    pub assets: &'static AssetUrls,
    /// The page follows live events (loads the SSE extension).
    pub live: bool,
}

impl Chrome {
    pub(crate) fn of(caller: Option<&Caller>, csrf: &str, title: String) -> Chrome {
        Chrome {
            title,
            login: caller.map(|c| c.user.login.clone()),
            csrf: csrf.to_owned(),
            teams: caller
                .map(|c| c.principal.roles.keys().cloned().collect())
                .unwrap_or_default(),
            team: None,
            crumbs: Vec::new(),
            platform_admin: caller.is_some_and(|c| c.principal.platform_admin),
            section: "",
            assets: urls(),
            live: false,
        }
    }

    pub(crate) fn section(mut self, section: &'static str) -> Chrome {
        self.section = section;
        self
    }

    pub(crate) fn crumb(mut self, label: impl Into<String>, href: impl Into<String>) -> Chrome {
        self.crumbs.push(Crumb {
            label: label.into(),
            href: href.into(),
        });
        self
    }

    /// Breadcrumbs start at the team.
    pub(crate) fn in_team(mut self, team: &str) -> Chrome {
        self.team = Some(team.to_owned());
        self.section = "teams";
        self.crumb(team, format!("/teams/{team}"))
    }

    pub(crate) fn live(mut self) -> Chrome {
        self.live = true;
        self
    }

    /// Whether `href` is the current page (the last crumb).
    pub(crate) fn is_current(&self, i: &usize) -> bool {
        *i + 1 == self.crumbs.len()
    }
}

/// A status word and its colour group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub word: String,
    /// `ready`, `running`, `waiting`, `failed`, `drifted`, `expiring` or `destroyed`.
    pub group: &'static str,
}

impl Status {
    /// The group of any status word Paddock uses (environment, operation, resource).
    pub(crate) fn of(word: &str) -> Status {
        let group = match word {
            "ready" | "succeeded" | "active" | "allowed" | "intact" => "ready",
            "creating" | "updating" | "destroying" | "queued" | "running" | "replacing"
            | "reading" | "checking" | "importing" => "running",
            "waiting" | "pending" | "not created" | "cancelling" | "waiting_for_approval" => {
                "waiting"
            }
            "approved" => "ready",
            "failed" | "denied" | "broken" | "rejected" => "failed",
            "drifted" => "drifted",
            "expiring" => "expiring",
            _ => "destroyed", // destroyed, cancelled, and anything finished without effect
        };
        Status {
            // `waiting_for_approval` reads as words on a page.
            word: word.replace('_', " "),
            group,
        }
    }

    pub(crate) fn new(word: &str, group: &'static str) -> Status {
        Status {
            word: word.to_owned(),
            group,
        }
    }
}

/// The legend, explained once in the layout's footer.
pub(crate) const LEGEND: &[(&str, &str, &str)] = &[
    ("ready", "ready", "exists and matches its blueprint"),
    (
        "running",
        "running",
        "being created, updated or destroyed, or queued to be",
    ),
    (
        "waiting",
        "waiting",
        "not made yet, or waiting for another operation or a reviewer",
    ),
    (
        "failed",
        "failed",
        "the last operation failed; its page says why and what to do",
    ),
    (
        "drifted",
        "drifted",
        "changed outside Paddock since it was made",
    ),
    (
        "expiring",
        "expiring",
        "will be destroyed soon, when its expiry passes, unless extended",
    ),
    (
        "destroyed",
        "destroyed",
        "removed, or cancelled before it ran",
    ),
];

/// A time: exact (RFC 3339, for `datetime` and `title`) and relative ("3 min ago").
#[derive(Clone, Debug)]
pub(crate) struct When {
    pub iso: String,
    pub rel: String,
}

impl When {
    pub(crate) fn at(ms: i64) -> When {
        When {
            iso: time(ms),
            rel: relative(ms, now_ms()),
        }
    }
}

/// "just now", "3 min ago", "2 hours ago", "5 days ago", or the date.
pub(crate) fn relative(ms: i64, now: i64) -> String {
    let s = (now - ms) / 1000;
    let (future, s) = (s < 0, s.abs());
    let text = match s {
        0..45 => return "just now".into(),
        45..90 => "1 min".to_owned(),
        90..3600 => format!("{} min", (s + 30) / 60),
        3600..5400 => "1 hour".to_owned(),
        5400..86_400 => format!("{} hours", (s + 1800) / 3600),
        86_400..172_800 => "1 day".to_owned(),
        172_800..2_592_000 => format!("{} days", (s + 43_200) / 86_400),
        _ => return time(ms)[..10].to_owned(),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Links to the neighbouring pages of a list.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
    /// "21–40 of 1,000", or empty.
    pub summary: String,
    pub prev_label: &'static str,
    pub next_label: &'static str,
}

impl Pager {
    /// An offset pager over `total` rows: `href(offset)` makes a page's URL.
    pub(crate) fn offsets(
        offset: i64,
        limit: i64,
        shown: usize,
        total: i64,
        href: impl Fn(i64) -> String,
    ) -> Pager {
        let first = if shown == 0 { 0 } else { offset + 1 };
        Pager {
            prev: (offset > 0).then(|| href((offset - limit).max(0))),
            next: (offset + limit < total).then(|| href(offset + limit)),
            summary: format!("{first}–{} of {}", offset + shown as i64, thousands(total)),
            prev_label: "Previous",
            next_label: "Next",
        }
    }

    /// A keyset pager, newest first: `next` goes to older rows.
    pub(crate) fn keyset(newer: Option<String>, older: Option<String>) -> Pager {
        Pager {
            prev: newer,
            next: older,
            summary: String::new(),
            prev_label: "Newest",
            next_label: "Older",
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.prev.is_none() && self.next.is_none() && self.summary.is_empty()
    }
}

/// 1000 → "1,000".
pub(crate) fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A page number from a query (`?page=`), 0-based offset of `limit` rows.
pub(crate) fn offset_of(page: Option<i64>, limit: i64) -> i64 {
    (page.unwrap_or(1).clamp(1, 1_000_000) - 1) * limit
}

/// The errors of a refused form: the summary at the top and each field's message.
#[derive(Clone, Debug, Default)]
pub(crate) struct FormErrors {
    pub all: Vec<FieldError>,
}

impl FormErrors {
    pub(crate) fn of(errors: Vec<FieldError>) -> FormErrors {
        FormErrors { all: errors }
    }

    /// The message for `field` (its first), or empty.
    pub(crate) fn get(&self, field: &str) -> &str {
        self.all
            .iter()
            .find(|e| e.field == field || e.field.starts_with(&format!("{field}[")))
            .map(|e| e.message.as_str())
            .unwrap_or("")
    }

    pub(crate) fn any(&self) -> bool {
        !self.all.is_empty()
    }
}

/// A plan's counts in the order plans read: create, update, replace, delete.
pub(crate) fn plan_counts(
    counts: &std::collections::BTreeMap<String, usize>,
) -> Vec<(&'static str, usize)> {
    ["create", "update", "replace", "delete"]
        .into_iter()
        .map(|k| (k, counts.get(k).copied().unwrap_or(0)))
        .collect()
}

/// `2 to create, 1 to update`, or `no changes`.
pub(crate) fn plan_summary(counts: &std::collections::BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = plan_counts(counts)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} to {k}"))
        .collect();
    if parts.is_empty() {
        "no changes".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        let now = 1_800_000_000_000;
        assert_eq!(relative(now - 10_000, now), "just now");
        assert_eq!(relative(now - 180_000, now), "3 min ago");
        assert_eq!(relative(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(relative(now - 3 * 86_400_000, now), "3 days ago");
        assert_eq!(relative(now + 600_000, now), "in 10 min");
        assert_eq!(relative(now - 90 * 86_400_000, now).len(), 10);
    }

    #[test]
    fn every_word_has_one_colour() {
        assert_eq!(Status::of("creating").group, "running");
        assert_eq!(Status::of("queued").group, "running");
        assert_eq!(Status::of("succeeded").group, "ready");
        assert_eq!(Status::of("failed").group, "failed");
        assert_eq!(Status::of("cancelled").group, "destroyed");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
