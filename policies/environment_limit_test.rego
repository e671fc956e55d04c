package paddock.policies.environment_limit

create(environments) := {
	"point": "request",
	"action": "create",
	"team": {"name": "payments", "environments": environments},
	"environment": {"name": "checkout", "exists": false, "parameters": null},
	"parameters": {"stages": ["dev"]},
}

test_a_team_below_the_limit_may_create if {
	count(deny) == 0 with input as create(2) with data.settings.maxEnvironmentsPerTeam as 3
}

test_a_team_at_the_limit_is_denied if {
	denied := deny with input as create(3) with data.settings.maxEnvironmentsPerTeam as 3
	some reason in denied
	reason.rule == "environments-per-team"
	reason.field == null
	contains(reason.message, "team payments already has 3 environments")
}

test_a_team_at_the_limit_may_still_update if {
	update := object.union(create(3), {"action": "update", "environment": {"name": "checkout", "exists": true}})
	count(deny) == 0 with input as update with data.settings.maxEnvironmentsPerTeam as 3
}

test_the_shipped_limit_is_twenty if {
	count(deny) == 0 with input as create(19)
	count(deny) == 1 with input as create(20)
}
