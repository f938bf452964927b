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

// addAPIFlags adds the flags that say how to reach the local agent's API.
func addAPIFlags(cmd *cobra.Command) {
	cmd.Flags().String("api-address", defaultAPIAddress, "address of the agent's API (as given to gitorch agent --api-address)")
	cmd.Flags().String("api-token-file", "", "file holding the API's bearer token (or set GITORCH_API_TOKEN)")
}

// apiClient talks to the agent's HTTP API.
type apiClient struct {
	addr  string
	token string
	http  *http.Client
}

func (a *app) apiClient() (*apiClient, error) {
	token, err := secret(a.cfg.GetString("api-token-file"), a.cfg.GetString("api-token"))
	if err != nil {
		return nil, usageError(fmt.Errorf("--api-token-file: %w", err))
	}
	return &apiClient{addr: a.cfg.GetString("api-address"), token: token, http: &http.Client{}}, nil
}

// get sends a GET and returns the response of a 2xx status; any other
// status is an error carrying the API's message.
func (c *apiClient) get(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: c.addr, Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, usageError(fmt.Errorf("--api-address %q: %w", c.addr, err))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no agent at %s (%v); is 'gitorch agent' running? Point at it with --api-address or GITORCH_API_ADDRESS", c.addr, errors.Unwrap(err))
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
