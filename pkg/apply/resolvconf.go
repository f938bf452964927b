package apply

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/gitorch/gitorch/pkg/plan"
	corev1 "k8s.io/api/core/v1"
)

// Kubernetes' limits on a pod's resolv.conf: glibc reads 3 nameservers;
// kubelet keeps 32 search domains of at most 2048 characters in all.
const (
	maxNameservers  = 3
	maxSearches     = 32
	maxSearchLength = 2048
)

// PodResolvConf is the resolv.conf of pod as kubelet writes it, from what
// the node knows (d):
//
//   - dnsPolicy ClusterFirst (the default), and ClusterFirstWithHostNet:
//     the cluster DNS as nameserver, the search domains
//     <ns>.svc.<domain> svc.<domain> <domain> and then the node's, and
//     options ndots:5. A hostNetwork pod with ClusterFirst gets the
//     node's file instead (Default).
//   - Default: the node's resolv.conf.
//   - None: nothing but the pod's dnsConfig.
//
// The pod's dnsConfig is then added: its nameservers and searches after
// those (without duplicates), its options replacing those of the same
// name. Nameservers are cut to 3 and searches to 32. ok is false when d
// names no cluster DNS: the pod keeps its image's file.
func PodResolvConf(pod *corev1.Pod, d plan.PodDNS) (rc plan.ResolvConf, ok bool) {
	if !d.ClusterDNS.IsValid() {
		return plan.ResolvConf{}, false
	}
	domain := strings.TrimSuffix(d.Domain, ".")
	if domain == "" {
		domain = plan.DefaultClusterDomain
	}
	host := plan.ResolvConf{
		Nameservers: slices.Clone(d.Host.Nameservers),
		Searches:    slices.Clone(d.Host.Searches),
		Options:     slices.Clone(d.Host.Options),
	}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	switch policy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		rc = host
	default: // ClusterFirst, ClusterFirstWithHostNet
		rc.Nameservers = []string{d.ClusterDNS.String()}
		rc.Searches = append([]string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}, host.Searches...)
		rc.Options = []string{"ndots:5"}
	}
	if c := pod.Spec.DNSConfig; c != nil {
		rc.Nameservers = append(rc.Nameservers, c.Nameservers...)
		rc.Searches = append(rc.Searches, c.Searches...)
		for _, o := range c.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			rc.Options = slices.DeleteFunc(rc.Options, func(s string) bool { n, _, _ := strings.Cut(s, ":"); return n == o.Name })
			rc.Options = append(rc.Options, opt)
		}
	}
	rc.Nameservers = uniq(rc.Nameservers)
	if len(rc.Nameservers) > maxNameservers {
		rc.Nameservers = rc.Nameservers[:maxNameservers]
	}
	rc.Searches = uniq(slices.DeleteFunc(rc.Searches, func(s string) bool { return s == "." || s == "" }))
	for i := range rc.Searches {
		rc.Searches[i] = strings.TrimSuffix(rc.Searches[i], ".")
	}
	rc.Searches = uniq(rc.Searches)
	if len(rc.Searches) > maxSearches {
		rc.Searches = rc.Searches[:maxSearches]
	}
	for n := len(strings.Join(rc.Searches, " ")); n > maxSearchLength; n = len(strings.Join(rc.Searches, " ")) {
		rc.Searches = rc.Searches[:len(rc.Searches)-1]
	}
	return rc, true
}

func uniq(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// FormatResolvConf is rc as a resolv.conf file.
func FormatResolvConf(rc plan.ResolvConf) []byte {
	var b strings.Builder
	if len(rc.Searches) > 0 {
		b.WriteString("search " + strings.Join(rc.Searches, " ") + "\n")
	}
	for _, n := range rc.Nameservers {
		b.WriteString("nameserver " + n + "\n")
	}
	if len(rc.Options) > 0 {
		b.WriteString("options " + strings.Join(rc.Options, " ") + "\n")
	}
	return []byte(b.String())
}

// ReadResolvConf reads the nameservers, search domains and options of the
// resolv.conf file at path (the node's /etc/resolv.conf), as kubelet does:
// the last search (or domain) line wins, options add up.
func ReadResolvConf(path string) (plan.ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return plan.ResolvConf{}, err
	}
	defer f.Close()
	var rc plan.ResolvConf
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				rc.Nameservers = append(rc.Nameservers, f[1])
			}
		case "search", "domain":
			rc.Searches = slices.Clone(f[1:])
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return plan.ResolvConf{}, fmt.Errorf("%s: %w", path, err)
	}
	return rc, nil
}
