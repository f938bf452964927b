package schema

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

const rolloutDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  paused: true
  selector: {matchLabels: {app: web}}
  strategy:
    rollingUpdate: {maxSurge: %s, maxUnavailable: %s}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: busybox}]
`

const rolloutDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy:
    rollingUpdate: {maxUnavailable: %s}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: app, image: busybox}]
`

func TestRolloutBounds(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"surge and unavailable both 0 are refused", fmt.Sprintf(rolloutDeployment, "0", `"0%"`),
			[]string{"maxUnavailable and maxSurge may not both be 0"}},
		{"one of them 0 is fine", fmt.Sprintf(rolloutDeployment, "1", "0"), nil},
		{"a DaemonSet's maxUnavailable 0 is refused", fmt.Sprintf(rolloutDaemonSet, "0"),
			[]string{"w.yaml:7:5: DaemonSet/default/agent: spec.updateStrategy.rollingUpdate: maxUnavailable may not be 0"}},
		{"a DaemonSet's maxUnavailable as a percentage", fmt.Sprintf(rolloutDaemonSet, `"50%"`), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := load(t, map[string]string{"w.yaml": c.doc})
			expect(t, res, c.want...)
		})
	}
}

func TestDeploymentGetsItsProgressDeadline(t *testing.T) {
	res := load(t, map[string]string{"w.yaml": fmt.Sprintf(rolloutDeployment, "1", "0")})
	expect(t, res)
	d := res.Objects[0].Obj.(*appsv1.Deployment)
	if d.Spec.ProgressDeadlineSeconds == nil || *d.Spec.ProgressDeadlineSeconds != 600 {
		t.Errorf("progressDeadlineSeconds %v, want the default 600", d.Spec.ProgressDeadlineSeconds)
	}
	if !d.Spec.Paused {
		t.Error("spec.paused was dropped")
	}
}

// A CronJob is run (docs/jobs.md) and needs no note; a PodDisruptionBudget
// is validated, and its note says that a pod that is not ready is not
// protected, unless it asks for that (AlwaysAllow).
func TestCronJobAndPodDisruptionBudgetAreValidatedWithANote(t *testing.T) {
	res := load(t, map[string]string{"c.yaml": `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
`})
	expect(t, res,
		"PodDisruptionBudget/default/web: spec.unhealthyPodEvictionPolicy: warning: gitorch does not protect a pod that is not ready")
	if len(res.Objects) != 2 {
		t.Fatalf("%d objects, want 2", len(res.Objects))
	}
	res = load(t, map[string]string{"b.yaml": `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector: {matchLabels: {app: web}}
`})
	if got := findings(res); got != "" {
		t.Errorf("a budget of AlwaysAllow: findings\n%s\nwant none", got)
	}
}
