"""What Paddock's GitHub provider does, with PyGithub, unchanged: a team with a member, a
repository from a template with the team's permission on it, deployment environments
with reviewers, environment secrets (sealed with the environment's public key by
PyGithub's own PublicKey, with PyNaCl) and variables read back, then the team deleted by
following its `url`, and the repository deleted. What PyGithub 1.59 has no method for it
asks through its own requester. Prints one JSON object of what it saw."""

import json
import os
import sys
import time
import urllib.request

import github
from github import Auth, Github
from github.EnvironmentDeploymentBranchPolicy import EnvironmentDeploymentBranchPolicyParams
from github.EnvironmentProtectionRuleReviewer import ReviewerParams
from github.PublicKey import PublicKey

env = os.environ
ca = env.get("PADDOCK_SANDBOX_CA_FILE") or True
gh = Github(base_url=env["PADDOCK_SANDBOX_GITHUB_URL"], auth=Auth.Token(env["PADDOCK_SANDBOX_GITHUB_TOKEN"]), verify=ca)
requester = gh._Github__requester
seen = {}

# The person to review deployments: made through the sandbox's control API, as a
# company's identity provisioning would.
request = urllib.request.Request(
    env["PADDOCK_SANDBOX_CONTROL_URL"] + "/github/users",
    data=json.dumps({"login": "ada", "name": "Ada"}).encode(),
    headers={"content-type": "application/json"},
)
urllib.request.urlopen(request).read()

org = gh.get_organization(env["PADDOCK_SANDBOX_GITHUB_ORG"])
ada = gh.get_user("ada")
team = org.create_team("Platform", privacy="closed", description="runs the platform")
team.add_membership(ada, role="maintainer")
seen["team_url"] = team.url
seen["members"] = sorted(m.login for m in team.get_members())

template = org.create_repo("service-template", private=True, auto_init=True)
requester.requestJsonAndCheck("PATCH", template.url, input={"is_template": True})
repo = org.create_repo_from_template("payments", gh.get_repo(template.full_name), private=True)
for _ in range(100):
    try:
        repo.get_branch("main")
        break
    except github.GithubException:
        time.sleep(0.1)
seen["readme"] = repo.get_contents("README.md").decoded_content.decode()
team.update_team_repository(repo, "push")
seen["permission"] = team.get_repo_permission(repo).push

environments = {}
for name, wait in [("staging", 0), ("production", 10)]:
    environment = repo.create_environment(
        name,
        wait_timer=wait,
        reviewers=[ReviewerParams("Team", team.id), ReviewerParams("User", ada.id)],
        deployment_branch_policy=EnvironmentDeploymentBranchPolicyParams(protected_branches=False, custom_branch_policies=True),
    )
    requester.requestJsonAndCheck("POST", f"{repo.url}/environments/{name}/deployment-branch-policies", input={"name": "main"})
    _, key = requester.requestJsonAndCheck("GET", f"{repo.url}/environments/{name}/secrets/public-key")
    public_key = PublicKey(requester, {}, key, completed=True)
    requester.requestJsonAndCheck(
        "PUT",
        f"{repo.url}/environments/{name}/secrets/DEPLOY_TOKEN",
        input={"encrypted_value": public_key.encrypt(f"token-for-{name}"), "key_id": public_key.key_id},
    )
    requester.requestJsonAndCheck("POST", f"{repo.url}/environments/{name}/variables", input={"name": "REGION", "value": "westeurope"})
    environment = repo.get_environment(name)
    reviewers = [r for rule in environment.protection_rules if rule.type == "required_reviewers" for r in rule.reviewers]
    _, secrets = requester.requestJsonAndCheck("GET", f"{repo.url}/environments/{name}/secrets")
    _, variables = requester.requestJsonAndCheck("GET", f"{repo.url}/environments/{name}/variables")
    environments[name] = {
        "rules": sorted(rule.type for rule in environment.protection_rules),
        "reviewers": sorted(r.type for r in reviewers),
        "secrets": secrets["secrets"],
        "variables": {v["name"]: v["value"] for v in variables["variables"]},
        "html_url": environment.html_url,
    }
seen["environments"] = environments
# What arrived in the sandbox, opened there with the environment's private key.
for name in environments:
    control = f"{env['PADDOCK_SANDBOX_CONTROL_URL']}/github/secrets/payments/{name}/DEPLOY_TOKEN"
    environments[name]["arrived"] = json.load(urllib.request.urlopen(control))["value"]
seen["listed"] = sorted(e.name for e in repo.get_environments())

# The team's `url` (/organizations/{org_id}/team/{team_id}) is where PyGithub deletes it.
team.delete()
try:
    org.get_team_by_slug("platform")
    seen["team_after_delete"] = "still there"
except github.UnknownObjectException:
    seen["team_after_delete"] = 404
repo.delete()
try:
    gh.get_repo(repo.full_name)
    seen["repo_after_delete"] = "still there"
except github.UnknownObjectException:
    seen["repo_after_delete"] = 404
json.dump(seen, sys.stdout)
