# Naming and tagging: names people and tools can read, within every system's limits, and
# resource groups that say whose they are. Knob: data.settings.reservedEnvironmentNames.
package paddock.policies.naming

reserved := {name | some name in data.settings.reservedEnvironmentNames}

# The longest stage name: namespaces are `{team}-{environment}-{stage}`.
longest_stage := 4

# Kubernetes namespaces are DNS labels.
max_namespace := 63

creating if {
	input.point == "request"
	input.action == "create"
}

# Request: a name the platform keeps for itself.
deny contains {
	"rule": "environment-name",
	"field": "name",
	"message": sprintf("the environment name %q is reserved for the platform; choose another", [name]),
} if {
	creating
	name := input.environment.name
	name in reserved
}

# Request: hyphens separate words (`a-b`), never end a name or double up.
deny contains {
	"rule": "environment-name",
	"field": "name",
	"message": sprintf("the environment name %q must not end with `-` or contain `--`", [name]),
} if {
	creating
	name := input.environment.name
	regex.match(`--|-$`, name)
}

# Request: every stage's namespace name must fit in a DNS label.
deny contains {
	"rule": "environment-name",
	"field": "name",
	"message": sprintf("with team %q, the environment name %q makes namespace names longer than %d characters; use at most %d characters", [team, name, max_namespace, room]),
} if {
	creating
	name := input.environment.name
	team := input.team.name
	room := ((max_namespace - count(team)) - longest_stage) - 2
	count(name) > room
}

# Plan: resource groups of a stage, created or changed.
resource_groups contains change if {
	input.point == "plan"
	is_string(input.stage)
	some change in input.changes
	change.type == "azure:resourceGroup"
	change.action in {"create", "update", "replace"}
}

expected_name := sprintf("rg-%s-%s-%s", [input.team.name, input.environment.name, input.stage])

deny contains {
	"rule": "resource-group-name",
	"field": sprintf("%s.name", [change.resource]),
	"message": sprintf("resource group %q must be named %q (rg-{team}-{app}-{stage})", [name, expected_name]),
} if {
	some change in resource_groups
	name := change.properties.name
	name != "(known after apply)"
	name != expected_name
}

required_tags := {
	"team": input.team.name,
	"app": input.environment.name,
	"stage": input.stage,
	"managedBy": "paddock",
}

shown(value) := "none" if value == null

shown(value) := sprintf("%q", [value]) if value != null

deny contains {
	"rule": "resource-group-tags",
	"field": sprintf("%s.tags.%s", [change.resource, tag]),
	"message": sprintf("resource group %s must be tagged %s=%q (found %s)", [change.resource, tag, want, shown(found)]),
} if {
	some change in resource_groups
	some tag, want in required_tags
	found := object.get(change.properties, ["tags", tag], null)
	found != want
}
