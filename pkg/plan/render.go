package plan

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// JSONVersion is the version of the JSON document WriteJSON writes; it
// changes only when a field is removed or changes meaning (docs/placement.md
// documents the schema).
const JSONVersion = 1

// WriteJSON writes the plan as one JSON document:
//
//	{"version": 1, "changes": [...], "pods": [...], "services": [...], "summary": {...}}
func (p *Plan) WriteJSON(w io.Writer) error {
	doc := struct {
		Version int `json:"version"`
		*Plan
	}{JSONVersion, p}
	if doc.Changes == nil {
		doc.Changes = []Change{}
	}
	if doc.Pods == nil {
		doc.Pods = []PodChange{}
	}
	if doc.Services == nil {
		doc.Services = []ServiceIP{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

// WriteText writes the plan for people, in the manner of terraform plan:
// objects (+ create, - destroy, ~ update with one line per field), then
// pods (+ placed, - stopped, ~ moved, ! unplaceable), then Services with
// their ClusterIPs, then a summary line. color adds ANSI colours.
func (p *Plan) WriteText(w io.Writer, color bool) error {
	bw := bufio.NewWriter(w)
	paint := func(c, s string) string {
		if !color {
			return s
		}
		return c + s + reset
	}
	sign := map[Action]string{
		ActionCreate: paint(green, "+"), ActionDestroy: paint(red, "-"),
		ActionUpdate: paint(yellow, "~"), ActionMove: paint(yellow, "~"),
		ActionUnplaceable: paint(red, "!"),
	}
	for _, c := range p.Changes {
		fmt.Fprintf(bw, "%s %s %s\n", sign[c.Action], c.Kind, qualified(c.Namespace, c.Name))
		for _, f := range c.Fields {
			if f.Sensitive != "" {
				fmt.Fprintf(bw, "    %s: %s\n", f.Path, f.Sensitive)
				continue
			}
			fmt.Fprintf(bw, "    %s: %s → %s\n", f.Path, orNone(f.Old), orNone(f.New))
		}
	}
	if len(p.Changes) > 0 && len(p.Pods) > 0 {
		fmt.Fprintln(bw)
	}
	for _, c := range p.Pods {
		name := qualified(c.Namespace, c.Name)
		switch c.Action {
		case ActionCreate:
			fmt.Fprintf(bw, "%s pod %s → %s\n", sign[c.Action], name, c.Node)
		case ActionDestroy:
			fmt.Fprintf(bw, "%s pod %s (on %s)\n", sign[c.Action], name, c.Node)
		case ActionMove:
			reason := ""
			if c.Reason != "" {
				reason = " (" + c.Reason + ")"
			}
			fmt.Fprintf(bw, "%s pod %s: %s → %s%s\n", sign[c.Action], name, c.From, c.Node, reason)
		case ActionUnplaceable:
			fmt.Fprintf(bw, "%s pod %s: unplaceable: %s\n", sign[c.Action], name, c.Reason)
		}
	}
	if len(p.Rollouts) > 0 {
		if len(p.Changes)+len(p.Pods) > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintln(bw, "Rollouts:")
		for _, r := range p.Rollouts {
			fmt.Fprintf(bw, "  %s %s: %s\n", r.Kind, qualified(r.Namespace, r.Name), r)
		}
	}
	if len(p.Unhealthy) > 0 {
		if len(p.Changes)+len(p.Pods)+len(p.Rollouts) > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintln(bw, "Not healthy now:")
		for _, h := range p.Unhealthy {
			msg := ""
			if h.Message != "" {
				msg = ": " + h.Message
			}
			fmt.Fprintf(bw, "  %s %s %s%s\n", h.Kind, qualified(h.Namespace, h.Name), paint(yellow, string(h.Health)), msg)
		}
	}
	if len(p.Services) > 0 {
		if len(p.Changes)+len(p.Pods)+len(p.Rollouts)+len(p.Unhealthy) > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintln(bw, "Services:")
		for _, s := range p.Services {
			ip := s.ClusterIP
			switch {
			case s.Error != "":
				ip = paint(red, "! "+s.Error)
			case s.Headless:
				ip = "None (headless)"
			case ip == "":
				ip = "(no ClusterIP)"
			}
			fmt.Fprintf(bw, "  %s  %s\n", qualified(s.Namespace, s.Name), ip)
		}
	}
	if len(p.Jobs)+len(p.CronJobs) > 0 {
		if len(p.Changes)+len(p.Pods)+len(p.Services) > 0 {
			fmt.Fprintln(bw)
		}
		writeBatchPlan(bw, p.Jobs, p.CronJobs)
	}
	if p.HasChanges() || len(p.Services) > 0 || len(p.Jobs)+len(p.CronJobs) > 0 {
		fmt.Fprintln(bw)
	}
	s := p.Summary
	fmt.Fprintf(bw, "%s %d to add, %d to change, %d to destroy; %d pods placed, %d moved, %d unplaceable.\n",
		paint(bold, "Plan:"), s.Add, s.Change, s.Destroy, s.Placed, s.Moved, s.Unplaceable)
	if !p.HasChanges() {
		fmt.Fprintln(bw, "No changes: the objects and their pods' nodes are as they are.")
	}
	return bw.Flush()
}

// qualified names an object: just its name in the default namespace,
// namespace/name elsewhere.
func qualified(ns, name string) string {
	if ns == "" || ns == "default" {
		return name
	}
	return ns + "/" + name
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// writeBatchPlan lists the Jobs with their completions and the CronJobs
// with their schedule and next run.
func writeBatchPlan(w io.Writer, jobs []JobStatus, crons []CronJobStatus) {
	if len(jobs) > 0 {
		fmt.Fprintln(w, "Jobs:")
		for _, j := range jobs {
			fmt.Fprintf(w, "  %s  %s completions, %d at a time\n", qualified(j.Namespace, j.Name), j.Progress(), len(j.Active))
		}
	}
	if len(crons) > 0 {
		fmt.Fprintln(w, "CronJobs:")
		for _, c := range crons {
			tz := c.TimeZone
			if tz == "" {
				tz = "UTC"
			}
			line := fmt.Sprintf("  %s  %q %s", qualified(c.Namespace, c.Name), c.Schedule, tz)
			switch {
			case c.Error != "":
				line += ": " + c.Error
			case c.Suspended:
				line += ", suspended"
			case !c.NextScheduleTime.IsZero():
				line += ", next run " + c.NextScheduleTime.Format(time.RFC3339)
			}
			fmt.Fprintln(w, line)
		}
	}
}
