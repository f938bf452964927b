package node_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

const webService = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
`

func withService(files map[string]string) map[string]string {
	files["svc.yaml"] = webService
	return files
}

// endpointsOf is the DNAT targets of the ruleset, sorted.
func endpointsOf(r plan.Ruleset) []string {
	var out []string
	for _, c := range r.Chains() {
		for _, rule := range c.Rules {
			if rule.Op == plan.OpDNAT {
				out = append(out, rule.To.String())
			}
		}
	}
	return out
}

func TestFakeAgentProgramsServicesFromPodStatus(t *testing.T) {
	n := newFakeNode(t)
	fp := &applytest.FakeProxy{}
	n.src.commit(withService(web(2, "busybox:1.36")))
	ag, _ := n.start(t, func(c *node.Config) { c.Proxy = fp })
	waitFor(t, "two endpoints in the rules", func() bool {
		r, _ := fp.Ruleset()
		return len(endpointsOf(r)) == 2
	})
	r, _ := fp.Ruleset()
	if len(r.ServiceIPs()) != 1 || r.ServiceIPs()[0].String() != "10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80" {
		t.Errorf("service-ips %v", r.ServiceIPs())
	}
	if len(r.NodePorts()) != 1 || !plan.DefaultNodePortRange.Contains(int32(r.NodePorts()[0].Port)) {
		t.Errorf("the NodePort Service got no nodePort in the range: %v", r.NodePorts())
	}
	for _, p := range ag.Status().Pods {
		if want := p.IP + ":8080"; !strings.Contains(strings.Join(endpointsOf(r), " "), want) {
			t.Errorf("pod %s (%s) is no endpoint: %v", p.Name, want, endpointsOf(r))
		}
	}
	if st := ag.Status().Proxy; st == nil || st.Services != 1 || st.LastError != "" {
		t.Errorf("proxy status %+v", st)
	}

	// Scaled to nothing: the Service refuses.
	n.src.commit(withService(web(0, "busybox:1.36")))
	ag.Sync()
	waitFor(t, "the Service without endpoints", func() bool {
		r, _ := fp.Ruleset()
		return len(r.ServiceIPs()) == 0 && len(r.NoEndpointIPs()) == 1
	})

	// A failing proxy is in the status, and retried.
	fp.Fail(errors.New("netlink: operation not permitted"))
	n.src.commit(withService(web(1, "busybox:1.36")))
	ag.Sync()
	waitFor(t, "the sync error in the status", func() bool {
		st := ag.Status().Proxy
		return st != nil && strings.Contains(st.LastError, "operation not permitted") && st.Failures > 0
	})
	fp.Fail(nil)
	waitFor(t, "the retry", func() bool {
		n.clk.Advance(node.ProxyRetry)
		r, _ := fp.Ruleset()
		return len(endpointsOf(r)) == 1 && ag.Status().Proxy.LastError == ""
	})
}

func TestFakeAgentUnreadyPodLeavesTheRules(t *testing.T) {
	n := newFakeNode(t)
	fp := &applytest.FakeProxy{}
	files := withService(web(2, "busybox:1.36"))
	files["web.yaml"] += `        readinessProbe:
          exec: {command: [check]}
          periodSeconds: 1
          failureThreshold: 1
`
	var failing sync.Map
	n.rt.SetExec(func(_, pod, _ string, _ []string) apply.ExecResult {
		if _, ok := failing.Load(pod); ok {
			return apply.ExecResult{ExitCode: 1}
		}
		return apply.ExecResult{}
	})
	n.src.commit(files)
	ag, _ := n.start(t, func(c *node.Config) { c.Proxy = fp })
	waitFor(t, "two endpoints", func() bool {
		n.clk.Advance(time.Second)
		r, _ := fp.Ruleset()
		return len(endpointsOf(r)) == 2
	})
	pod := ag.Status().Pods[0]
	failing.Store(pod.Name, true)
	waitFor(t, "the unready pod out of the rules", func() bool {
		n.clk.Advance(time.Second)
		r, _ := fp.Ruleset()
		eps := endpointsOf(r)
		return len(eps) == 1 && eps[0] != pod.IP+":8080"
	})
	failing.Delete(pod.Name)
	waitFor(t, "the pod back in the rules", func() bool {
		n.clk.Advance(time.Second)
		r, _ := fp.Ruleset()
		return len(endpointsOf(r)) == 2
	})
}
