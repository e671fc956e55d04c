package paddock.policies.prod_approval

plan(kind, stage, changes) := {
	"point": "plan",
	"operation": {"id": "op-1", "kind": kind, "requestedBy": "ada"},
	"requester": {"login": "ada", "platformAdmin": false, "teamRole": "admin"},
	"team": {"name": "payments"},
	"environment": {"name": "checkout"},
	"stack": sprintf("payments-checkout-%s", [stage]),
	"stage": stage,
	"changes": changes,
}

quota_update := {
	"resource": "quota",
	"type": "kubernetes:resourceQuota",
	"action": "update",
	"properties": {"hard": {"pods": "60"}},
	"before": {"hard": {"pods": "20"}},
	"diff": [{"property": "hard.pods", "before": "20", "after": "60"}],
}

test_a_change_outside_prod_needs_no_approval if {
	count(approve) == 0 with input as plan("up", "test", [quota_update])
}

test_prod_with_nothing_to_change_needs_no_approval if {
	count(approve) == 0 with input as plan("up", "prod", [])
}

test_a_prod_change_needs_a_team_admin_other_than_the_requester if {
	approvals := approve with input as plan("up", "prod", [quota_update])
	count(approvals) == 1
	some reason in approvals
	reason.rule == "prod-change"
	reason.field == "quota"
	reason.approvers == "team-admin"
	contains(reason.message, "other than ada")
}

test_a_prod_destroy_needs_approval_even_when_nothing_is_left if {
	approvals := approve with input as plan("destroy", "prod", [])
	count(approvals) == 1
	some reason in approvals
	reason.rule == "prod-destroy"
	reason.approvers == "team-admin"
}

test_a_destroy_outside_prod_needs_no_approval if {
	count(approve) == 0 with input as plan("destroy", "dev", [])
}
