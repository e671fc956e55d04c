# Only approved resource types: a plan may create or change only resources of a type the
# platform team has reviewed. Deleting anything is always allowed (it removes risk).
# Knob: data.settings.approvedResourceTypes.
package paddock.policies.resource_types

approved := {type | some type in data.settings.approvedResourceTypes}

deny contains {
	"rule": "approved-resource-types",
	"field": change.resource,
	"message": sprintf("%s is a %s, which is not an approved resource type; ask the platform team to review it", [change.resource, change.type]),
} if {
	input.point == "plan"
	some change in input.changes
	change.action != "delete"
	not change.type in approved
}
