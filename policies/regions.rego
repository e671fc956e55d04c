# Allowed regions: Azure resources live only in regions the platform approved (data
# residency, cost, support). Knob: data.settings.allowedRegions.
package paddock.policies.regions

allowed := {region | some region in data.settings.allowedRegions}

listing := concat(", ", sort([region | some region in allowed]))

# A value as the message shows it: a string quoted, anything else (null, a number, an
# object sent where a region name belongs) by its type, so that a message never fails
# (JSON would not: a number beyond what JSON writes, -1.8e308 say, cannot be shown).
shown(value) := sprintf("%q", [value]) if is_string(value)

shown(value) := sprintf("of type %s", [type_name(value)]) if not is_string(value)

# Request: the region asked for, on a create or an update.
deny contains {
	"rule": "allowed-regions",
	"field": "region",
	"message": sprintf("region %s is not allowed; allowed regions: %s", [shown(region), listing]),
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
	"message": sprintf("resource group %s would be in region %s, which is not allowed; allowed regions: %s", [change.resource, shown(location), listing]),
} if {
	input.point == "plan"
	some change in input.changes
	change.type == "azure:resourceGroup"
	change.action in {"create", "update", "replace"}
	location := change.properties.location
	location != "(known after apply)"
	not location in allowed
}
