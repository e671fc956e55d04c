# Kubernetes quota within the team's allowance: a request asks for a size (small, medium,
# large) no bigger than the team's allowance, and a plan sets no namespace quota above
# the allowance's figures. Knobs: data.settings.quota.defaultAllowance, .teamAllowances
# (team -> size), .sizes (the figures of each size), .order (smallest first).
package paddock.policies.quota

settings := data.settings.quota

allowance := object.get(settings.teamAllowances, input.team.name, settings.defaultAllowance)

rank(size) := i if {
	some i, s in settings.order
	s == size
}

# Request: the quota size asked for.
deny contains {
	"rule": "quota-allowance",
	"field": "quota",
	"message": sprintf("quota %q is above team %s's allowance (%s); ask a platform admin to raise it", [size, input.team.name, allowance]),
} if {
	input.point == "request"
	input.action in {"create", "update"}
	size := input.parameters.quota
	rank(size) > rank(allowance)
}

# Which figure of a size a hard limit is measured against.
dimension := {
	"cpu": "cpu",
	"requests.cpu": "cpu",
	"limits.cpu": "cpu",
	"memory": "memory",
	"requests.memory": "memory",
	"limits.memory": "memory",
	"pods": "pods",
}

# A Kubernetes quantity ("500m", "8Gi", "20") as a number; undefined when unknown.
quantity(value) := value if is_number(value)

quantity(value) := units.parse(value) if {
	is_string(value)
	regex.match(`^[0-9]+(\.[0-9]+)?([a-zA-Z]{1,2})?$`, value)
}

# Plan: every hard limit of a namespace quota created or changed.
deny contains {
	"rule": "quota-allowance",
	"field": sprintf("%s.hard.%s", [change.resource, key]),
	"message": sprintf("%s sets %s to %v, above team %s's allowance (%s: %s)", [change.resource, key, value, input.team.name, allowance, limit]),
} if {
	input.point == "plan"
	some change in input.changes
	change.type == "kubernetes:resourceQuota"
	change.action in {"create", "update", "replace"}
	some key, value in change.properties.hard
	limit := settings.sizes[allowance][dimension[key]]
	quantity(value) > quantity(limit)
}
