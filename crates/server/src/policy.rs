//! Who may do what: the one place where every endpoint's permission is decided.
//!
//! Handlers name the [`Action`] they are about to take and call [`authorize`]; nothing
//! else in the server compares roles. The rules:
//! - readers (any member of a team) read the team, its environments, operations and audit;
//! - contributors also create environments, run operations on dev and test, and set the
//!   expiry of environments without prod;
//! - admins also manage members, touch prod, destroy, and reveal secrets;
//! - platform admins may do everything, and alone manage people, blueprints, policy packs
//!   and settings and read the whole audit log;
//! - anyone signed in may read their own account, manage their own tokens, list teams,
//!   people, blueprints and policy packs, and create a team (becoming its admin).
//!
//! A token with the `read` scope may only take actions that change nothing, and may not
//! reveal secrets.

use std::collections::BTreeMap;

use paddock_platform::Stage;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in a team, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Contributor,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Contributor => "contributor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Reader, Role::Contributor, Role::Admin]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// What a request may do beyond its owner's roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything its owner may do.
    Write,
    /// Only what changes nothing.
    Read,
}

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: String,
    pub login: String,
    pub platform_admin: bool,
    /// Team → role.
    pub roles: BTreeMap<String, Role>,
    pub scope: Scope,
}

/// Every action an endpoint takes, with what the decision depends on.
#[derive(Clone, Debug)]
pub enum Action<'a> {
    ReadSelf,
    ManageOwnTokens,
    ListPeople,
    ManagePeople,
    ListTeams,
    CreateTeam,
    ReadTeam {
        team: &'a str,
    },
    ManageMembers {
        team: &'a str,
    },
    ListBlueprints,
    PublishBlueprint,
    ReadEnvironment {
        team: &'a str,
    },
    /// Create an environment, or bring stages of one up (or preview or refresh them).
    ChangeStages {
        team: &'a str,
        stages: &'a [Stage],
    },
    Destroy {
        team: &'a str,
    },
    /// Set, extend or remove an environment's expiry (which tears all of its stages down).
    SetExpiry {
        team: &'a str,
        stages: &'a [Stage],
    },
    RevealSecrets {
        team: &'a str,
    },
    ReadAudit {
        team: Option<&'a str>,
    },
    /// Approve or reject an operation that waits for approval. Separation of duties: the
    /// person who requested the operation may not decide it, whatever their roles.
    DecideApproval {
        team: &'a str,
        requested_by: &'a str,
    },
    /// Bring an environment to a newer blueprint version.
    UpgradeEnvironment {
        team: &'a str,
    },
    /// Pin an environment to a blueprint version (or unpin it).
    PinEnvironment {
        team: &'a str,
    },
    /// Read fleet rollouts and their reports.
    ReadRollouts,
    /// Start or cancel a fleet rollout.
    ManageRollouts,
    /// Read the policy packs (what is enforced is no secret).
    ReadPolicies,
    /// Publish a policy pack version.
    PublishPolicies,
    /// Evaluate an input document against a policy pack (a test bench for admins).
    EvaluatePolicies,
}

impl Action<'_> {
    /// Whether the action changes anything, or reveals secrets (and so is audited when
    /// denied, and refused to read-only tokens).
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            Action::ReadSelf
                | Action::ListPeople
                | Action::ListTeams
                | Action::ReadTeam { .. }
                | Action::ListBlueprints
                | Action::ReadEnvironment { .. }
                | Action::ReadAudit { .. }
                | Action::ReadRollouts
                | Action::ReadPolicies
                | Action::EvaluatePolicies
        )
    }

    /// The audit log's name for the action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::ReadSelf => "me.read",
            Action::ManageOwnTokens => "token.manage",
            Action::ListPeople => "user.list",
            Action::ManagePeople => "user.manage",
            Action::ListTeams => "team.list",
            Action::CreateTeam => "team.create",
            Action::ReadTeam { .. } => "team.read",
            Action::ManageMembers { .. } => "team.member.manage",
            Action::ListBlueprints => "blueprint.list",
            Action::PublishBlueprint => "blueprint.publish",
            Action::ReadEnvironment { .. } => "environment.read",
            Action::ChangeStages { .. } => "environment.change",
            Action::Destroy { .. } => "environment.destroy",
            Action::SetExpiry { .. } => "environment.expiry",
            Action::RevealSecrets { .. } => "environment.outputs.reveal",
            Action::ReadAudit { .. } => "audit.read",
            Action::DecideApproval { .. } => "approval.decide",
            Action::UpgradeEnvironment { .. } => "environment.upgrade",
            Action::PinEnvironment { .. } => "environment.pin",
            Action::ReadRollouts => "rollout.read",
            Action::ManageRollouts => "rollout.manage",
            Action::ReadPolicies => "policy.read",
            Action::PublishPolicies => "policy.publish",
            Action::EvaluatePolicies => "policy.evaluate",
        }
    }

    /// The team the action is on, if any.
    pub fn team(&self) -> Option<&str> {
        match self {
            Action::ReadTeam { team }
            | Action::ManageMembers { team }
            | Action::ReadEnvironment { team }
            | Action::ChangeStages { team, .. }
            | Action::SetExpiry { team, .. }
            | Action::Destroy { team }
            | Action::RevealSecrets { team }
            | Action::DecideApproval { team, .. } => Some(team),
            Action::UpgradeEnvironment { team } | Action::PinEnvironment { team } => Some(team),
            Action::ReadAudit { team } => *team,
            _ => None,
        }
    }

    /// Revealing secrets reads, but is recorded whether allowed or not; evaluating policy
    /// packs changes nothing, but an attempt by someone else than a platform admin is
    /// recorded.
    pub fn audited(&self) -> bool {
        self.mutates()
            || matches!(
                self,
                Action::RevealSecrets { .. } | Action::EvaluatePolicies
            )
    }
}

/// Why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied(pub String);

/// Decides whether `who` may take `action`.
pub fn authorize(who: &Principal, action: &Action<'_>) -> Result<(), Denied> {
    if who.scope == Scope::Read && action.mutates() {
        return Err(Denied(
            "this API token has the `read` scope, which changes nothing and reveals no \
             secret; use a token with the `write` scope"
                .into(),
        ));
    }
    if let Action::DecideApproval { requested_by, .. } = action
        && who.login == *requested_by
    {
        return Err(Denied(format!(
            "{} requested this operation and so may not approve or reject it; another \
             admin of the team must",
            who.login
        )));
    }
    if who.platform_admin {
        return Ok(());
    }
    let need = |team: &str, role: Role, what: &str| -> Result<(), Denied> {
        match who.roles.get(team) {
            Some(has) if *has >= role => Ok(()),
            Some(has) => Err(Denied(format!(
                "{what} needs the {} role in team `{team}`; {} is a {} there",
                role.name(),
                who.login,
                has.name()
            ))),
            None => Err(Denied(format!(
                "{what} needs the {} role in team `{team}`; {} is not a member",
                role.name(),
                who.login
            ))),
        }
    };
    let platform_only = |what: &str| Err(Denied(format!("{what} is for platform admins")));
    match action {
        Action::ReadSelf
        | Action::ManageOwnTokens
        | Action::ListPeople
        | Action::ListTeams
        | Action::CreateTeam
        | Action::ListBlueprints
        | Action::ReadPolicies => Ok(()),
        Action::ManagePeople => platform_only("managing people"),
        Action::PublishBlueprint => platform_only("publishing blueprints"),
        Action::PublishPolicies => platform_only("publishing policy packs"),
        Action::EvaluatePolicies => platform_only("evaluating policy packs"),
        Action::ReadAudit { team: None } => platform_only("reading the whole audit log"),
        Action::ReadAudit { team: Some(team) } => {
            need(team, Role::Reader, "reading the team's audit log")
        }
        Action::ReadTeam { team } => need(team, Role::Reader, "reading the team"),
        Action::ReadEnvironment { team } => need(team, Role::Reader, "reading environments"),
        Action::ManageMembers { team } => need(team, Role::Admin, "managing members"),
        Action::ChangeStages { team, stages } => {
            if stages.contains(&Stage::Prod) {
                need(team, Role::Admin, "changing the prod stage")
            } else {
                need(team, Role::Contributor, "changing dev and test stages")
            }
        }
        Action::Destroy { team } => need(team, Role::Admin, "destroying an environment"),
        // An expiry schedules a destroy: on prod, only those who may destroy prod set it.
        Action::SetExpiry { team, stages } => {
            if stages.contains(&Stage::Prod) {
                need(
                    team,
                    Role::Admin,
                    "setting the expiry of an environment with prod",
                )
            } else {
                need(team, Role::Contributor, "setting an environment's expiry")
            }
        }
        Action::RevealSecrets { team } => need(team, Role::Admin, "revealing secrets"),
        Action::DecideApproval { team, .. } => {
            need(team, Role::Admin, "approving or rejecting an operation")
        }
        Action::UpgradeEnvironment { team } => need(team, Role::Admin, "upgrading an environment"),
        Action::PinEnvironment { team } => need(team, Role::Admin, "pinning an environment"),
        Action::ReadRollouts => platform_only("reading fleet rollouts"),
        Action::ManageRollouts => platform_only("fleet rollouts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: Option<Role>) -> Principal {
        Principal {
            user_id: "u1".into(),
            login: "ada".into(),
            platform_admin: false,
            roles: role
                .map(|r| ("payments".to_owned(), r))
                .into_iter()
                .collect(),
            scope: Scope::Write,
        }
    }

    #[test]
    fn roles_grant_what_the_rules_say_and_no_more() {
        let dev = [Stage::Dev];
        let prod = [Stage::Dev, Stage::Prod];
        let t = "payments";
        let cases: Vec<(Action, [bool; 4])> = vec![
            // none, reader, contributor, admin
            (Action::ReadTeam { team: t }, [false, true, true, true]),
            (
                Action::ReadEnvironment { team: t },
                [false, true, true, true],
            ),
            (
                Action::ReadAudit { team: Some(t) },
                [false, true, true, true],
            ),
            (
                Action::ChangeStages {
                    team: t,
                    stages: &dev,
                },
                [false, false, true, true],
            ),
            (
                Action::ChangeStages {
                    team: t,
                    stages: &prod,
                },
                [false, false, false, true],
            ),
            (Action::Destroy { team: t }, [false, false, false, true]),
            (
                Action::SetExpiry {
                    team: t,
                    stages: &dev,
                },
                [false, false, true, true],
            ),
            (
                Action::SetExpiry {
                    team: t,
                    stages: &prod,
                },
                [false, false, false, true],
            ),
            (
                Action::RevealSecrets { team: t },
                [false, false, false, true],
            ),
            (
                Action::ManageMembers { team: t },
                [false, false, false, true],
            ),
            (
                Action::ReadAudit { team: None },
                [false, false, false, false],
            ),
            (Action::PublishBlueprint, [false, false, false, false]),
            (
                Action::UpgradeEnvironment { team: t },
                [false, false, false, true],
            ),
            (
                Action::PinEnvironment { team: t },
                [false, false, false, true],
            ),
            (Action::ReadRollouts, [false, false, false, false]),
            (Action::ManageRollouts, [false, false, false, false]),
            (Action::PublishPolicies, [false, false, false, false]),
            (Action::EvaluatePolicies, [false, false, false, false]),
            (Action::ReadPolicies, [true, true, true, true]),
            (Action::ManagePeople, [false, false, false, false]),
            (Action::CreateTeam, [true, true, true, true]),
            (
                Action::DecideApproval {
                    team: t,
                    requested_by: "bob",
                },
                [false, false, false, true],
            ),
        ];
        let roles = [
            None,
            Some(Role::Reader),
            Some(Role::Contributor),
            Some(Role::Admin),
        ];
        for (action, expected) in &cases {
            for (role, allowed) in roles.iter().zip(expected) {
                assert_eq!(
                    authorize(&member(*role), action).is_ok(),
                    *allowed,
                    "{action:?} as {role:?}"
                );
            }
            let mut admin = member(None);
            admin.platform_admin = true;
            assert!(
                authorize(&admin, action).is_ok(),
                "{action:?} as platform admin"
            );
        }
    }

    #[test]
    fn nobody_decides_an_approval_of_their_own_operation() {
        let own = Action::DecideApproval {
            team: "payments",
            requested_by: "ada",
        };
        let mut ada = member(Some(Role::Admin));
        let denied = authorize(&ada, &own).unwrap_err();
        assert!(denied.0.contains("another admin of the team"), "{denied:?}");
        ada.platform_admin = true;
        assert!(authorize(&ada, &own).is_err(), "not even a platform admin");
    }

    #[test]
    fn a_read_token_changes_nothing_even_for_a_platform_admin() {
        let mut who = member(Some(Role::Admin));
        who.platform_admin = true;
        who.scope = Scope::Read;
        assert!(authorize(&who, &Action::ReadTeam { team: "payments" }).is_ok());
        let denied = authorize(&who, &Action::CreateTeam).unwrap_err();
        assert!(denied.0.contains("`read` scope"), "{denied:?}");
    }

    #[test]
    fn a_denial_names_the_role_needed_and_the_one_held() {
        let denied = authorize(
            &member(Some(Role::Contributor)),
            &Action::Destroy { team: "payments" },
        )
        .unwrap_err();
        assert_eq!(
            denied.0,
            "destroying an environment needs the admin role in team `payments`; ada is a \
             contributor there"
        );
    }
}
