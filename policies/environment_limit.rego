# At most N environments per team: each costs cloud money and review time. Knob:
# data.settings.maxEnvironmentsPerTeam (environments not destroyed, counted per team).
package paddock.policies.environment_limit

limit := data.settings.maxEnvironmentsPerTeam

deny contains {
	"rule": "environments-per-team",
	"field": null,
	"message": sprintf("team %s already has %d environments, the most a team may have; destroy one first, or ask a platform admin to raise the limit", [input.team.name, input.team.environments]),
} if {
	input.point == "request"
	input.action == "create"
	not input.environment.exists
	input.team.environments >= limit
}
