package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotRunning is wrapped when nothing answers on the admin socket.
var ErrNotRunning = errors.New("laked is not running (no admin socket)")

// MaxResponseBytes bounds a response body the client reads.
const MaxResponseBytes = 16 << 20

// APIError is a non-2xx answer from the admin API.
type APIError struct {
	Code        int      // HTTP status
	Message     string   // the "error" field
	VerifierLog []string // the verifier's log, for a rejected policy
}

// Error returns the message, with the verifier log's lines when there are
// any.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("laked: %s (HTTP %d)", e.Message, e.Code)
	if len(e.VerifierLog) > 0 {
		msg += "\nverifier log:\n" + strings.Join(e.VerifierLog, "\n")
	}
	return msg
}

// Client talks to laked's admin API over its unix socket. It is safe for
// concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the admin socket at path (DefaultSocket
// when empty). Every call is bounded by its context and by timeout (30 s
// when zero).
func NewClient(path string, timeout time.Duration) *Client {
	if path == "" {
		path = DefaultSocket
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 10 * time.Second,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// Socket is the admin socket path the client uses.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// do sends a request and decodes a 2xx answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://laked"+path, body)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("admin socket %s: %w: %v", c.socket, ErrNotRunning, err)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("admin socket %s: permission denied (it is root-only: run as root): %w", c.socket, err)
		}
		return fmt.Errorf("admin socket %s: %s %s: %w", c.socket, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("admin: %s %s: read answer: %w", method, path, err)
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("admin: %s %s: answer larger than %d bytes", method, path, MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var er ErrorResponse
		if err := json.Unmarshal(data, &er); err != nil || er.Error == "" {
			er.Error = strings.TrimSpace(string(data))
			if len(er.Error) > 512 {
				er.Error = er.Error[:512] + "..."
			}
		}
		return &APIError{Code: resp.StatusCode, Message: er.Error, VerifierLog: er.VerifierLog}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin: %s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// call is do for an answer of type T; it returns nil on error.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	return call[StatusResponse](ctx, c, http.MethodGet, "/v1/status", nil)
}

// Models is GET /v1/models.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var out ModelsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/models", nil, &out); err != nil {
		return nil, err
	}
	return out.Models, nil
}

// LoadModel is POST /v1/models: serve the model of kind in the file at
// path (absolute, as laked sees it) under id, swapping an existing one when
// replace is set. It returns the served model.
func (c *Client) LoadModel(ctx context.Context, id uint32, kind, path string, replace bool) (*Model, error) {
	req := LoadModelRequest{ID: &id, Kind: kind, Path: path, Replace: replace}
	return call[Model](ctx, c, http.MethodPost, "/v1/models", req)
}

// UnloadModel is DELETE /v1/models/{id}; it returns the model that was
// served.
func (c *Client) UnloadModel(ctx context.Context, id uint32) (*Model, error) {
	return call[Model](ctx, c, http.MethodDelete, "/v1/models/"+strconv.FormatUint(uint64(id), 10), nil)
}

// Policy is GET /v1/policy.
func (c *Client) Policy(ctx context.Context) (*PolicyResponse, error) {
	return call[PolicyResponse](ctx, c, http.MethodGet, "/v1/policy", nil)
}

// LoadPolicy is POST /v1/policy. A rejected object is an *APIError with
// code 422 and the verifier log; the previous policy stays active.
func (c *Client) LoadPolicy(ctx context.Context, req LoadPolicyRequest) (*PolicyResponse, error) {
	return call[PolicyResponse](ctx, c, http.MethodPost, "/v1/policy", req)
}

// SetParams is PUT /v1/policy/params.
func (c *Client) SetParams(ctx context.Context, u ParamsUpdate) (*PolicyResponse, error) {
	return call[PolicyResponse](ctx, c, http.MethodPut, "/v1/policy/params", u)
}

// Features is GET /v1/features.
func (c *Client) Features(ctx context.Context) (*FeaturesResponse, error) {
	return call[FeaturesResponse](ctx, c, http.MethodGet, "/v1/features", nil)
}

// Retrain is GET /v1/retrain.
func (c *Client) Retrain(ctx context.Context) (*RetrainResponse, error) {
	return call[RetrainResponse](ctx, c, http.MethodGet, "/v1/retrain", nil)
}

// LiteFlow is GET /v1/liteflow.
func (c *Client) LiteFlow(ctx context.Context) (*LiteFlowResponse, error) {
	return call[LiteFlowResponse](ctx, c, http.MethodGet, "/v1/liteflow", nil)
}

// LiteFlowUnpin is POST /v1/liteflow/{app}/unpin.
func (c *Client) LiteFlowUnpin(ctx context.Context, app string, restart bool) (*LiteFlowResponse, error) {
	return call[LiteFlowResponse](ctx, c, http.MethodPost, "/v1/liteflow/"+url.PathEscape(app)+"/unpin", LiteFlowUnpinRequest{Restart: restart})
}

// Stats is GET /v1/stats.
func (c *Client) Stats(ctx context.Context) (*StatsResponse, error) {
	return call[StatsResponse](ctx, c, http.MethodGet, "/v1/stats", nil)
}

// Reload is POST /v1/reload.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, nil)
}
