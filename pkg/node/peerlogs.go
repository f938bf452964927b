package node

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// ProxiedHeader marks a request one node forwarded to another, with the
// forwarding node's name as its value. A node answers such a request
// itself or not at all, so that two nodes whose views of the cluster
// disagree never send a request back and forth.
const ProxiedHeader = "Gitorch-Proxied-By"

// PodLocator says where a pod runs.
type PodLocator interface {
	// LocatePod returns the node that runs the pod and the address of
	// that node's API ("" when it has none); ok is false when no node of
	// the cluster runs it.
	LocatePod(namespace, name string) (node, apiAddress string, ok bool)
}

// ClusterLocator finds pods in a StatusSource's view of the cluster: the
// pod's Node, and that member's APIAddress.
type ClusterLocator struct{ Source StatusSource }

// LocatePod implements PodLocator.
func (l ClusterLocator) LocatePod(namespace, name string) (string, string, bool) {
	c := l.Source.Cluster()
	for _, p := range c.Pods {
		if p.Namespace != namespace || p.Name != name {
			continue
		}
		for _, m := range c.Members {
			if m.Name == p.Node {
				return p.Node, m.APIAddress, true
			}
		}
		return p.Node, "", true
	}
	return "", "", false
}

// peerLogs answers for the logs of a pod this node does not run: the
// node that runs it is asked, and its answer, streamed as it comes, is
// this one.
func (s *api) peerLogs(w http.ResponseWriter, r *http.Request, ns, name string) {
	self := s.status.Status().Node
	if by := r.Header.Get(ProxiedHeader); by == self {
		// A node whose API address is loopback, say, gossiped an address
		// that leads here.
		apiError(w, http.StatusBadGateway, fmt.Errorf("pod %s/%s: the API address of the node that runs it leads back to node %s; give every node an --api-address the others reach", ns, name, self))
		return
	} else if by != "" {
		apiError(w, http.StatusNotFound, fmt.Errorf("pod %s/%s not found on node %s, where %s believed it runs", ns, name, self, by))
		return
	}
	node, addr, ok := s.opts.Pods.LocatePod(ns, name)
	if !ok || node == self {
		// A pod that this node's cluster view places here but that it
		// does not run is starting or gone.
		apiError(w, http.StatusNotFound, fmt.Errorf("pod %s/%s not found on any node", ns, name))
		return
	}
	if addr == "" {
		apiError(w, http.StatusBadGateway, fmt.Errorf("pod %s/%s runs on node %s, which gives no API address", ns, name, node))
		return
	}
	target, err := peerURL(addr)
	if err != nil {
		apiError(w, http.StatusBadGateway, fmt.Errorf("pod %s/%s runs on node %s, whose API address %q is not usable: %v", ns, name, node, addr, err))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + r.URL.Path
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = r.URL.RawQuery
			pr.Out.Host = ""
			// Nodes share the API token; the caller's own credentials
			// stay here.
			pr.Out.Header.Del("Authorization")
			if s.opts.Token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+s.opts.Token)
			}
			pr.Out.Header.Set(ProxiedHeader, self)
		},
		Transport: s.opts.PeerTransport,
		// Flush every write: a followed log arrives line by line.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away; there is nobody to tell.
				return
			}
			apiError(w, http.StatusBadGateway, fmt.Errorf("pod %s/%s runs on node %s, whose API at %s does not answer: %v", ns, name, node, addr, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// peerURL is the base URL of a node's API: an APIAddress is HOST:PORT
// (served over HTTP), or a URL.
func peerURL(addr string) (*url.URL, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}
