package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultAPIAddress is where the agent serves its API unless configured.
const defaultAPIAddress = "127.0.0.1:7480"

// addAPIFlags adds the flags that say which agent's API to ask: the local
// one at --api-address, or any node's at --server.
func addAPIFlags(cmd *cobra.Command) {
	cmd.Flags().String("api-address", defaultAPIAddress, "HOST:PORT of the local agent's API (as given to gitorch agent --api-address)")
	cmd.Flags().String("server", "", "URL of another node's API to ask instead, e.g. http://10.0.0.2:7480 (or set GITORCH_SERVER)")
	cmd.Flags().String("api-token-file", "", "file holding the API's bearer token (or set GITORCH_API_TOKEN)")
}

// apiClient talks to an agent's HTTP API.
type apiClient struct {
	base *url.URL
	// addr is the agent as the user named it, for messages.
	addr  string
	token string
	http  *http.Client
}

// apiClient is a client of the agent at --server, or else at
// --api-address.
func (a *app) apiClient(cmd *cobra.Command) (*apiClient, error) {
	token, err := secret(a.cfg.GetString("api-token-file"), a.cfg.GetString("api-token"))
	if err != nil {
		return nil, usageError(fmt.Errorf("--api-token-file: %w", err))
	}
	if cmd.Flags().Changed("server") && cmd.Flags().Changed("api-address") {
		return nil, usageError(errors.New("--server and --api-address both say which agent to ask: give one"))
	}
	c := &apiClient{token: token, http: &http.Client{}}
	if server := a.cfg.GetString("server"); server != "" {
		base, err := serverURL(server)
		if err != nil {
			return nil, usageError(fmt.Errorf("--server %q: %w", server, err))
		}
		c.base, c.addr = base, server
		return c, nil
	}
	c.addr = a.cfg.GetString("api-address")
	c.base = &url.URL{Scheme: "http", Host: c.addr}
	return c, nil
}

// serverURL parses --server: an http or https URL, perhaps with a path
// prefix (an API behind a reverse proxy); a bare HOST:PORT is http.
func serverURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %s: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host: want a URL such as http://10.0.0.2:7480")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want no query or fragment")
	}
	return u, nil
}

// get sends a GET and returns the response of a 2xx status; any other
// status is an error carrying the API's message.
func (c *apiClient) get(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	return c.do(ctx, http.MethodGet, path, query)
}

// do sends a request without a body, as get does.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	// path is escaped already.
	u, err := url.Parse(strings.TrimSuffix(c.base.String(), "/") + path)
	if err != nil {
		return nil, usageError(fmt.Errorf("agent at %q: %w", c.addr, err))
	}
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, usageError(fmt.Errorf("agent at %q: %w", c.addr, err))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no agent at %s (%v); is 'gitorch agent' running? Point at it with --api-address or GITORCH_API_ADDRESS, or ask another node with --server", c.addr, errors.Unwrap(err))
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("agent at %s: %s; give it with --api-token-file or GITORCH_API_TOKEN", c.addr, e.Error)
		}
		return nil, errors.New(e.Error)
	}
	return nil, fmt.Errorf("agent at %s: %s: %s", c.addr, resp.Status, strings.TrimSpace(string(b)))
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *apiClient) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.get(ctx, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("agent at %s: bad answer: %w", c.addr, err)
	}
	return nil
}

// postWait POSTs to path an action the agent carries out before it
// answers (sync, leave), waiting up to --timeout for it (the agent is told
// the same), and decodes the JSON answer into v.
func (a *app) postWait(cmd *cobra.Command, path string, v any) (*apiClient, error) {
	c, err := a.apiClient(cmd)
	if err != nil {
		return nil, err
	}
	timeout := a.cfg.GetDuration("timeout")
	if timeout <= 0 {
		return nil, usageError(fmt.Errorf("--timeout %s: want a positive duration", timeout))
	}
	c.http.Timeout = timeout + 10*time.Second
	resp, err := c.do(cmd.Context(), http.MethodPost, path, url.Values{"timeout": {timeout.String()}})
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return c, fmt.Errorf("agent at %s: bad answer: %w", c.addr, err)
	}
	return c, nil
}
