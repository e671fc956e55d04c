package paddock.policies.quota

request(size) := {
	"point": "request",
	"action": "update",
	"team": {"name": "payments", "environments": 1},
	"environment": {"name": "checkout", "exists": true},
	"parameters": {"stages": ["dev"], "quota": size},
	"changed": ["quota"],
}

plan(hard) := {
	"point": "plan",
	"team": {"name": "payments"},
	"stage": "dev",
	"changes": [{
		"resource": "quota",
		"type": "kubernetes:resourceQuota",
		"action": "create",
		"properties": {"namespace": "payments-checkout-dev", "name": "paddock-quota", "hard": hard},
		"before": null,
		"diff": [],
	}],
}

medium := {
	"requests.cpu": "4",
	"limits.cpu": "4",
	"requests.memory": "8Gi",
	"limits.memory": "8Gi",
	"pods": "20",
}

test_a_size_within_the_default_allowance_is_allowed if {
	count(deny) == 0 with input as request("large")
}

test_a_size_above_the_team_allowance_is_denied_at_quota if {
	denied := deny with input as request("large") with data.settings.quota.teamAllowances as {"payments": "medium"}
	some reason in denied
	reason.rule == "quota-allowance"
	reason.field == "quota"
	contains(reason.message, `"large" is above team payments's allowance (medium)`)
}

test_another_team_keeps_the_default_allowance if {
	count(deny) == 0 with input as request("large") with data.settings.quota.teamAllowances as {"billing": "small"}
}

test_plan_hard_limits_within_the_allowance_are_allowed if {
	count(deny) == 0 with input as plan(medium) with data.settings.quota.defaultAllowance as "medium"
	count(deny) == 0 with input as plan({"requests.cpu": "1500m", "pods": 3}) with data.settings.quota.defaultAllowance as "small"
}

test_plan_hard_limits_above_the_allowance_are_denied_at_each_limit if {
	denied := deny with input as plan(medium) with data.settings.quota.defaultAllowance as "small"
	fields := {reason.field | some reason in denied}
	fields == {
		"quota.hard.requests.cpu", "quota.hard.limits.cpu",
		"quota.hard.requests.memory", "quota.hard.limits.memory", "quota.hard.pods",
	}
}

test_plan_unknown_quantities_are_not_judged if {
	count(deny) == 0 with input as plan({"pods": "(known after apply)"}) with data.settings.quota.defaultAllowance as "small"
}
