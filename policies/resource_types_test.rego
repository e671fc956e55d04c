package paddock.policies.resource_types

plan(type, action) := {
	"point": "plan",
	"stage": "dev",
	"changes": [{"resource": "thing", "type": type, "action": action, "properties": {}, "before": null, "diff": []}],
}

test_every_type_the_platform_uses_is_approved if {
	used := [
		"azure:resourceGroup", "azure:roleAssignment", "azure:managementLock",
		"entra:application", "entra:servicePrincipal", "entra:federatedCredential", "entra:group",
		"github:repository", "github:repositoryVariable", "github:environment", "github:environmentVariable",
		"github:environmentSecret", "github:team", "github:teamRepository",
		"kubernetes:namespace", "kubernetes:serviceAccount", "kubernetes:role",
		"kubernetes:roleBinding", "kubernetes:resourceQuota", "kubernetes:limitRange",
		"kubernetes:networkPolicy", "kubernetes:serviceAccountToken",
	]
	every type in used {
		count(deny) == 0 with input as plan(type, "create")
	}
}

test_an_unapproved_type_is_denied_at_its_resource if {
	denied := deny with input as plan("azure:virtualMachine", "create")
	some reason in denied
	reason.rule == "approved-resource-types"
	reason.field == "thing"
	contains(reason.message, "azure:virtualMachine")
}

test_deleting_an_unapproved_type_is_allowed if {
	count(deny) == 0 with input as plan("azure:virtualMachine", "delete")
}

test_the_request_point_is_not_concerned if {
	count(deny) == 0 with input as {"point": "request", "action": "create"}
}
