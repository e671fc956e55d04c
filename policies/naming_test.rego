package paddock.policies.naming

request(team, name) := {
	"point": "request",
	"action": "create",
	"team": {"name": team, "environments": 0},
	"environment": {"name": name, "exists": false, "parameters": null},
	"parameters": {"stages": ["dev"], "region": "westeurope", "quota": "medium"},
}

good_tags := {"team": "payments", "app": "checkout", "stage": "dev", "managedBy": "paddock"}

plan(name, tags) := {
	"point": "plan",
	"team": {"name": "payments"},
	"environment": {"name": "checkout"},
	"stage": "dev",
	"changes": [{
		"resource": "resourceGroup",
		"type": "azure:resourceGroup",
		"action": "create",
		"properties": {"name": name, "location": "westeurope", "tags": tags},
		"before": null,
		"diff": [],
	}],
}

test_request_a_plain_name_is_allowed if {
	count(deny) == 0 with input as request("payments", "checkout")
}

test_request_a_reserved_name_is_denied_at_name if {
	denied := deny with input as request("payments", "platform")
	some reason in denied
	reason.rule == "environment-name"
	reason.field == "name"
	contains(reason.message, "reserved")
}

test_request_a_trailing_or_doubled_hyphen_is_denied if {
	count(deny) == 1 with input as request("payments", "check-")
	count(deny) == 1 with input as request("payments", "check--out")
}

test_request_a_name_too_long_for_a_namespace_is_denied if {
	team := "a-team-with-a-rather-long-name"
	denied := deny with input as request(team, "and-a-longer-application-name")
	some reason in denied
	contains(reason.message, "use at most 27 characters")
	count(deny) == 0 with input as request(team, "short-enough-app-name-here")
}

test_plan_a_resource_group_named_and_tagged_as_required_is_allowed if {
	count(deny) == 0 with input as plan("rg-payments-checkout-dev", good_tags)
}

test_plan_a_resource_group_named_otherwise_is_denied_at_its_name if {
	denied := deny with input as plan("my-group", good_tags)
	some reason in denied
	reason.rule == "resource-group-name"
	reason.field == "resourceGroup.name"
	contains(reason.message, `"rg-payments-checkout-dev"`)
}

test_plan_a_missing_or_wrong_tag_is_denied_at_the_tag if {
	tags := {"team": "billing", "app": "checkout", "stage": "dev"}
	denied := deny with input as plan("rg-payments-checkout-dev", tags)
	fields := {reason.field | some reason in denied}
	fields == {"resourceGroup.tags.team", "resourceGroup.tags.managedBy"}
}
