# Prod needs a second pair of eyes: every change to a prod stage, and every destroy of
# one, waits for a team admin other than the requester to approve the exact plan.
package paddock.policies.prod_approval

requester := input.operation.requestedBy

prod if {
	input.point == "plan"
	input.stage == "prod"
}

# Each resource an `up` would create, update, replace or delete in prod.
approve contains {
	"rule": "prod-change",
	"field": change.resource,
	"message": sprintf("%s of %s (%s) in prod needs approval by a team admin other than %s", [change.action, change.resource, change.type, requester]),
	"approvers": "team-admin",
} if {
	prod
	input.operation.kind != "destroy"
	some change in input.changes
}

# A destroy of prod, whatever is left in it.
approve contains {
	"rule": "prod-destroy",
	"field": null,
	"message": sprintf("destroying prod (%s) needs approval by a team admin other than %s", [input.stack, requester]),
	"approvers": "team-admin",
} if {
	prod
	input.operation.kind == "destroy"
}
