package paddock.policies.regions

request(region) := {
	"point": "request",
	"action": "create",
	"parameters": {"stages": ["dev"], "region": region, "quota": "medium"},
}

plan(location, action) := {
	"point": "plan",
	"stage": "dev",
	"changes": [{
		"resource": "resourceGroup",
		"type": "azure:resourceGroup",
		"action": action,
		"properties": {"name": "rg-payments-checkout-dev", "location": location},
		"before": null,
		"diff": [],
	}],
}

test_request_in_an_allowed_region_is_allowed if {
	count(deny) == 0 with input as request("westeurope")
}

test_request_outside_the_allowed_regions_is_denied_at_region if {
	denied := deny with input as request("eastus")
	count(denied) == 1
	some reason in denied
	reason.rule == "allowed-regions"
	reason.field == "region"
	contains(reason.message, `"eastus" is not allowed`)
}

test_the_allowed_regions_are_a_knob if {
	count(deny) == 0 with input as request("eastus") with data.settings.allowedRegions as ["eastus"]
}

test_plan_resource_group_in_an_allowed_region_is_allowed if {
	count(deny) == 0 with input as plan("northeurope", "create")
}

test_plan_resource_group_outside_the_allowed_regions_is_denied_at_its_location if {
	denied := deny with input as plan("eastus", "update")
	some reason in denied
	reason.field == "resourceGroup.location"
}

test_plan_deleting_a_resource_group_anywhere_is_allowed if {
	count(deny) == 0 with input as plan("eastus", "delete")
}

test_a_region_that_is_not_a_string_is_denied_with_a_message if {
	denied := deny with input as request(null)
	count(denied) == 1
	some reason in denied
	reason.field == "region"
	contains(reason.message, "region of type null is not allowed")
}

# Found by the request_policy fuzz target: a number JSON cannot write failed the rule.
test_a_region_no_json_can_write_is_denied_with_a_message if {
	denied := deny with input as request(-1.7976931348623157e+308)
	count(denied) == 1
	some reason in denied
	contains(reason.message, "region of type number is not allowed")
}

test_a_region_that_is_an_object_is_denied_with_a_message if {
	denied := deny with input as request({"name": -1.7976931348623157e+308})
	count(denied) == 1
	some reason in denied
	contains(reason.message, "region of type object is not allowed")
}
