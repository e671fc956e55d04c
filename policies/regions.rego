# Allowed regions: Azure resources live only in regions the platform approved (data
# residency, cost, support). Knob: data.settings.allowedRegions.
package paddock.policies.regions

allowed := {region | some region in data.settings.allowedRegions}

listing := concat(", ", sort([region | some region in allowed]))

# Request: the region asked for, on a create or an update.
deny contains {
	"rule": "allowed-regions",
	"field": "region",
	"message": sprintf("region %q is not allowed; allowed regions: %s", [region, listing]),
} if {
	input.point == "request"
	input.action in {"create", "update"}
	region := input.parameters.region
	not region in allowed
}

# Plan: the location of every resource group created, updated or replaced.
deny contains {
	"rule": "allowed-regions",
	"field": sprintf("%s.location", [change.resource]),
	"message": sprintf("resource group %s would be in region %q, which is not allowed; allowed regions: %s", [change.resource, location, listing]),
} if {
	input.point == "plan"
	some change in input.changes
	change.type == "azure:resourceGroup"
	change.action in {"create", "update", "replace"}
	location := change.properties.location
	location != "(known after apply)"
	not location in allowed
}
