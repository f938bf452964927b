package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/plan"
)

// The states of a Member, as gossip reports them. Suspect is not dead: a
// suspect node may refute and come back.
const (
	MemberAlive   = "alive"
	MemberSuspect = "suspect"
	MemberDead    = "dead"
	MemberLeft    = "left"
)

// SingleNode is the cluster of one node, n alone: what a node that knows
// no peers answers for the cluster.
func SingleNode(n Node) Cluster {
	self := Member{Name: n.Node, Status: MemberAlive, Pods: len(n.Pods), Schedulable: true, Self: true}
	if n.Running != nil {
		self.Revision = n.Running.Commit
	}
	if n.Refused != nil {
		self.Refused = n.Refused.Commit
		if len(n.Refused.Errors) > 0 {
			self.RefusedError = n.Refused.Errors[0]
		}
	}
	return Cluster{
		Node: n.Node, Repo: n.Repo, Ref: n.Ref, Path: n.Path,
		Running: n.Running, Refused: n.Refused, Source: n.Source,
		Quorum:      true,
		Members:     []Member{self},
		Pods:        n.Pods,
		Unplaceable: n.Unplaceable,
		Workloads:   n.Workloads,
		Jobs:        n.Jobs,
		CronJobs:    n.CronJobs,
		Leaving:     n.Leaving,
	}
}

// maxNamesListed is how many node names a header line lists before it
// counts the rest.
const maxNamesListed = 8

// WriteCluster prints the cluster as `gitorch status` shows it: a header
// with the answering node's revision, source and refused revision, the
// revisions the members run and refused, then a table of every pod of the
// cluster (kubectl get pods' columns, wide adding WORKLOAD and REVISION)
// and the pods that fit on no node.
func WriteCluster(w io.Writer, c Cluster, wide bool, now time.Time) error {
	fmt.Fprintf(w, "Node:      %s\n", c.Node)
	repo := c.Repo
	if c.Ref != "" {
		repo += " (" + c.Ref + ")"
	}
	if c.Path != "" {
		repo += " path " + c.Path
	}
	fmt.Fprintf(w, "Repo:      %s\n", repo)
	if r := c.Running; r != nil {
		fmt.Fprintf(w, "Revision:  %s %s (committed %s ago, running for %s)\n", gitrev.Short(r.Commit), r.Subject, Age(r.Time, now), Age(r.LoadedAt, now))
	} else {
		fmt.Fprintf(w, "Revision:  none yet\n")
	}
	if s := c.Source; s.LastError != "" {
		retry := ""
		if !s.NextRetry.IsZero() {
			retry = ", next try in " + Age(now, s.NextRetry)
		}
		fmt.Fprintf(w, "Fetch:     failing (%d in a row%s): %s\n", s.Failures, retry, s.LastError)
	} else if !s.LastFetch.IsZero() {
		fmt.Fprintf(w, "Fetch:     ok, %s ago\n", Age(s.LastFetch, now))
	}
	writeMembership(w, c)
	if l := c.Leaving; l != nil {
		fmt.Fprintf(w, "Leaving:   for %s, %s still running here\n", Age(l.Since, now), plural(l.Pods, "pod"))
		for _, h := range l.Held {
			if now.Before(h.Until) {
				fmt.Fprintf(w, "  %s/%s: selected by PodDisruptionBudget %s, waits %s more for the other nodes' news\n", h.Namespace, h.Name, h.Budget, Age(now, h.Until))
				continue
			}
			fmt.Fprintf(w, "  %s/%s: held by PodDisruptionBudget %s (it allows no disruption now)\n", h.Namespace, h.Name, h.Budget)
		}
	}
	if r := c.Refused; r != nil {
		fmt.Fprintf(w, "\nRefused revision %s", gitrev.Short(r.Commit))
		if r.Subject != "" {
			fmt.Fprintf(w, " (%s)", r.Subject)
		}
		keeps := "the revision above keeps running"
		if c.Running == nil {
			keeps = "no revision runs until one is valid"
		}
		fmt.Fprintf(w, ": %d error(s); %s\n", len(r.Errors), keeps)
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintln(w)
	if len(c.Workloads) > 0 {
		if err := WriteWorkloads(w, c.Workloads); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if len(c.Pods) == 0 {
		fmt.Fprintln(w, "No pods in the cluster.")
	} else if err := writePods(w, c.Pods, wide, now); err != nil {
		return err
	}
	if len(c.Unplaceable) > 0 {
		fmt.Fprintf(w, "\nPods that fit on no node (%d):\n", len(c.Unplaceable))
		for _, u := range c.Unplaceable {
			fmt.Fprintf(w, "  %s/%s: %s\n", u.Namespace, u.Name, u.Reason)
		}
	}
	return writeBatch(w, c.Jobs, c.CronJobs, now)
}

// writeMembership prints the members by state, the quorum when it is
// lost, and which members run and refused which revision, so that a
// cluster running several revisions shows it at a glance.
func writeMembership(w io.Writer, c Cluster) {
	if len(c.Members) == 0 {
		return
	}
	counts := map[string]int{}
	known := 0
	for _, m := range c.Members {
		counts[m.Status]++
		if m.Status != MemberLeft {
			known++
		}
	}
	var states []string
	for _, s := range []string{MemberAlive, MemberSuspect, MemberDead, MemberLeft} {
		if counts[s] > 0 {
			states = append(states, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	name := ""
	if c.ClusterName != "" {
		name = c.ClusterName + ", "
	}
	fmt.Fprintf(w, "Cluster:   %s%s: %s\n", name, plural(len(c.Members), "node"), strings.Join(states, ", "))
	if !c.Quorum {
		fmt.Fprintf(w, "Quorum:    lost: %s sees %d of the %d members it knows alive; its StatefulSet pods are stopped\n", c.Node, counts[MemberAlive], known)
	}
	if len(c.Members) == 1 {
		// The node alone: its revisions are those above.
		return
	}
	// A line per distinct revision, the one most nodes run first, nodes
	// with none yet last.
	byRev := map[string][]string{}
	for _, m := range c.Members {
		n := m.Name
		if m.Status != MemberAlive {
			n += " (" + m.Status + ")"
		}
		byRev[m.Revision] = append(byRev[m.Revision], n)
	}
	revs := slices.Collect(maps.Keys(byRev))
	slices.SortFunc(revs, func(a, b string) int {
		if d := len(byRev[b]) - len(byRev[a]); d != 0 {
			return d
		}
		if (a == "") != (b == "") { // no revision yet goes last
			return strings.Compare(b, a)
		}
		return strings.Compare(a, b)
	})
	label := "Running:   "
	for _, r := range revs {
		shown := gitrev.Short(r)
		if r == "" {
			shown = "no revision yet"
		}
		fmt.Fprintf(w, "%s%s on %s\n", label, shown, names(byRev[r], len(c.Members)))
		label = "           "
	}
	// A line per refused revision: who refused it, and the first error.
	type refusal struct {
		nodes []string
		err   string
	}
	refused := map[string]*refusal{}
	for _, m := range c.Members {
		if m.Refused == "" {
			continue
		}
		r := refused[m.Refused]
		if r == nil {
			r = &refusal{}
			refused[m.Refused] = r
		}
		r.nodes = append(r.nodes, m.Name)
		if r.err == "" {
			r.err = m.RefusedError
		}
	}
	label = "Refused:   "
	for _, rev := range slices.Sorted(maps.Keys(refused)) {
		r := refused[rev]
		fmt.Fprintf(w, "%s%s by %s", label, gitrev.Short(rev), names(r.nodes, len(c.Members)))
		if r.err != "" {
			fmt.Fprintf(w, ": %s", r.err)
		}
		fmt.Fprintln(w)
		label = "           "
	}
}

// names lists node names, or says "every node" when they are all of the
// cluster's total, and counts those past maxNamesListed.
func names(l []string, total int) string {
	if len(l) == total && total > 1 {
		return fmt.Sprintf("every node (%d)", total)
	}
	if len(l) > maxNamesListed {
		return strings.Join(l[:maxNamesListed], ", ") + fmt.Sprintf(" and %d more", len(l)-maxNamesListed)
	}
	return strings.Join(l, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// writePods is the table of pods, as kubectl get pods -o wide has it.
func writePods(w io.Writer, pods []plan.PodStatus, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE\tIP\tNODE"
	if wide {
		head += "\tWORKLOAD\tREVISION"
	}
	fmt.Fprintln(tw, head)
	for _, p := range pods {
		ip := p.IP
		if ip == "" {
			ip = "<none>"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name, readyColumn(p), podStatusWord(p), restarts(p, now), podAge(p, now), ip, p.Node)
		if wide {
			workload, rev := p.Workload, gitrev.Short(p.Revision)
			if workload == "" {
				workload = "<none>"
			}
			if rev == "" {
				rev = "<none>"
			}
			line += fmt.Sprintf("\t%s\t%s", workload, rev)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// readyColumn is kubectl's READY: ready app containers over all of them.
// A pod reported by another node through gossip comes without its
// containers: then only whether it is ready is known.
func readyColumn(p plan.PodStatus) string {
	if len(p.Containers) == 0 && p.Summary == nil {
		if p.Ready {
			return "yes"
		}
		return "no"
	}
	ready, total := p.ReadyCount()
	return fmt.Sprintf("%d/%d", ready, total)
}

// podStatusWord is kubectl's STATUS column: the reason when there is one,
// else the phase.
func podStatusWord(p plan.PodStatus) string {
	if p.Reason != "" {
		return p.Reason
	}
	if p.Phase == "" {
		return "<unknown>"
	}
	return p.Phase
}

// restarts is kubectl's RESTARTS column: the count, and how long ago the
// last restart's instance ended. A pod known without its containers
// (from gossip) has no count to show.
func restarts(p plan.PodStatus, now time.Time) string {
	if len(p.Containers) == 0 && p.Summary == nil {
		return "-"
	}
	n := p.Restarts()
	s := strconv.Itoa(n)
	var last time.Time
	for _, c := range p.Containers {
		if c.LastTermination != nil && c.LastTermination.FinishedAt.After(last) {
			last = c.LastTermination.FinishedAt
		}
	}
	if n > 0 && !last.IsZero() {
		s += " (" + Age(last, now) + " ago)"
	}
	return s
}

func podAge(p plan.PodStatus, now time.Time) string {
	if p.StartedAt.IsZero() {
		return "<unknown>"
	}
	return Age(p.StartedAt, now)
}

// WriteMembers prints the members as `gitorch status nodes` shows them:
// NAME, ADDRESS, STATUS, REVISION (short), PODS and AGE (since the
// answering node first saw the member); wide adds API, POD-CIDR, LABELS
// and SCHEDULABLE.
func WriteMembers(w io.Writer, members []Member, wide bool, now time.Time) error {
	if len(members) == 0 {
		_, err := fmt.Fprintln(w, "No nodes.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "NAME\tADDRESS\tSTATUS\tREVISION\tPODS\tAGE"
	if wide {
		head += "\tAPI\tPOD-CIDR\tLABELS\tSCHEDULABLE"
	}
	fmt.Fprintln(tw, head)
	for _, m := range members {
		rev := gitrev.Short(m.Revision)
		if rev == "" {
			rev = "<none>"
		}
		joined := "<unknown>"
		if !m.Joined.IsZero() {
			joined = Age(m.Joined, now)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s", m.Name, orNone(m.Address), orNone(m.Status), rev, m.Pods, joined)
		if wide {
			line += fmt.Sprintf("\t%s\t%s\t%s\t%s", orNone(m.APIAddress), orNone(m.PodCIDR), labels(m.Labels), schedulable(m, now))
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// labels prints labels as kubectl's --show-labels does: k=v,k=v sorted.
func labels(l map[string]string) string {
	if len(l) == 0 {
		return "<none>"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// schedulable says whether the member gets pods, and, for one settling
// after it came back, when it will.
func schedulable(m Member, now time.Time) string {
	if m.Schedulable {
		return "yes"
	}
	if m.SettledAt.After(now) {
		return "no (settling, " + Age(now, m.SettledAt) + " left)"
	}
	return "no"
}

// Age prints now-t as kubectl does: 45s, 3m12s, 12m, 5h3m, 5h, 3d4h, 12d,
// 2y70d, 9y. A time in the future (clock skew) is 0s.
func Age(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		s := int(d.Seconds()) % 60
		if s == 0 {
			return fmt.Sprintf("%dm", int(d.Minutes()))
		}
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), s)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		m := int(d.Minutes()) % 60
		if m == 0 {
			return fmt.Sprintf("%dh", int(d.Hours()))
		}
		return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 8*24*time.Hour:
		h := int(d.Hours()) % 24
		if h == 0 {
			return fmt.Sprintf("%dd", int(d.Hours())/24)
		}
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, h)
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours())/24)
	case d < 8*365*24*time.Hour:
		days := int(d.Hours()) / 24
		if days%365 == 0 {
			return fmt.Sprintf("%dy", days/365)
		}
		return fmt.Sprintf("%dy%dd", days/365, days%365)
	}
	return fmt.Sprintf("%dy", int(d.Hours())/24/365)
}

// WriteWorkloads prints workloads with their health: a table of
// NAMESPACE, WORKLOAD (kubectl's kind/name), HEALTH, READY (available of
// replicas), UP-TO-DATE, OLD and MESSAGE.
func WriteWorkloads(w io.Writer, ws []plan.WorkloadStatus) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tHEALTH\tREADY\tUP-TO-DATE\tOLD\tMESSAGE")
	for _, s := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%s\n", s.Namespace, s.Ref(), s.Health, s.Available, s.Replicas, s.Updated, s.Old, s.Message)
	}
	return tw.Flush()
}
