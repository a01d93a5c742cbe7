package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/internal/regfile"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos/retrain"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/policy"
)

// FeatureLister is what the admin API reads from the feature registry;
// *features.Registry implements it.
type FeatureLister interface {
	Schemas() ([]*features.SchemaInfo, error)
	Keys(id features.SchemaID) ([]uint64, error)
}

// Deps are what the admin API serves. Server is required; the rest may be
// left zero, and the endpoints that need a missing piece answer 404 (no
// policy engine, no feature registry) or 501 (no LoadModel, no Reload).
type Deps struct {
	// Server is the running laked core.
	Server *laked.Server
	// Policy is the placement policy engine, nil when laked runs without.
	Policy *policy.Engine
	// LoadModel builds a model of the given kind from data, the contents
	// of the file at path (absolute and cleaned); the caller (cmd/laked)
	// knows the formats. The admin API reads the file itself, outside its
	// lock: only a regular file of at most MaxModelBytes.
	LoadModel func(kind, path string, data []byte) (laked.Model, error)
	// MaxModelBytes caps a model file (0: DefaultMaxModelBytes).
	MaxModelBytes int64
	// ModelKinds are the kinds LoadModel accepts; empty means KindMLP and
	// KindLinnOS. Other kinds are refused before LoadModel is called.
	ModelKinds []string
	// Features is the feature registry, nil when there is none.
	Features FeatureLister
	// Retrain reports the LinnOS retraining status (GET /v1/retrain); nil
	// when laked does not retrain.
	Retrain func() RetrainResponse
	// LiteFlow lists laked's LiteFlow apps (nil: none run here).
	LiteFlow func() []kapp.Status
	// LiteFlowLoad, when set, is offered every liteflow model replacing
	// a served one (models load --replace) first: when id is a LiteFlow
	// app's model the app serves the snapshot and pins (handled true);
	// otherwise (handled false) the model is replaced as any other.
	LiteFlowLoad func(id uint32, m laked.Model) (handled bool, err error)
	// LiteFlowUnpin unpins app (POST /v1/liteflow/{app}/unpin); nil:
	// 501. Errors wrapping kapp.ErrNoApp answer 404.
	LiteFlowUnpin func(app string, restart bool) error
	// Version is laked's version string.
	Version string
	// Started is when laked started (uptime is measured from it).
	Started time.Time
	// Reload does what SIGHUP does (re-read the configuration and the
	// policy).
	Reload func() error
	// Logger receives one line per state change made through the API.
	Logger zerolog.Logger
	// Now is the clock (nil: time.Now); tests pin it.
	Now func() time.Time
}

// Handler is the admin API's http.Handler. It is safe for concurrent use;
// requests that change state are serialised among themselves.
type Handler struct {
	d     Deps
	mux   *http.ServeMux
	kinds map[string]bool
	mu    ctxMutex // serialises model and policy changes and reloads
}

// lock takes the state-changing lock for request r; a request whose
// caller went away while it waited is dropped instead of applied.
func (h *Handler) lock(r *http.Request) error {
	ctx := r.Context()
	if err := h.mu.LockContext(ctx); err != nil {
		return errorf(http.StatusServiceUnavailable, "caller gone before the request was applied: %v", err)
	}
	if err := ctx.Err(); err != nil {
		h.mu.Unlock()
		return errorf(http.StatusServiceUnavailable, "caller gone before the request was applied: %v", err)
	}
	return nil
}

// DefaultMaxModelBytes is the default cap on a model file.
const DefaultMaxModelBytes = 256 << 20

// ctxMutex is a mutex whose Lock can give up when a request's caller is
// gone.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

func (m ctxMutex) Lock()   { m.ch <- struct{}{} }
func (m ctxMutex) Unlock() { <-m.ch }

// LockContext takes the lock unless ctx ends first.
func (m ctxMutex) LockContext(ctx context.Context) error {
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// New returns the admin API over d.
func New(d Deps) (*Handler, error) {
	if d.Server == nil {
		return nil, errors.New("admin: Deps.Server is required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Started.IsZero() {
		d.Started = d.Now()
	}
	if r, ok := d.Features.(*features.Registry); ok && r == nil {
		d.Features = nil // a nil registry in the interface: none attached
	}
	kinds := d.ModelKinds
	if len(kinds) == 0 {
		kinds = []string{KindMLP, KindLinnOS}
	}
	if d.MaxModelBytes <= 0 {
		d.MaxModelBytes = DefaultMaxModelBytes
	}
	h := &Handler{d: d, kinds: map[string]bool{}, mu: newCtxMutex()}
	for _, k := range kinds {
		h.kinds[k] = true
	}
	h.mux = h.newMux()
	return h, nil
}

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	code int
	msg  string
	log  []string
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// endpoint is one route's handler: it returns the response body or an
// error (an *apiError carries its status).
type endpoint func(*http.Request) (any, error)

// newMux registers the endpoints on a ServeMux with method patterns; the
// mux does the matching, and for a known path with the wrong method its
// 405 answer carries the Allow header.
func (h *Handler) newMux() *http.ServeMux {
	m := http.NewServeMux()
	for pattern, ep := range map[string]endpoint{
		"GET /v1/status":         h.status,
		"GET /v1/models":         h.models,
		"POST /v1/models":        h.loadModel,
		"DELETE /v1/models/{id}": func(r *http.Request) (any, error) { return h.unloadModel(r.PathValue("id")) },
		"GET /v1/policy":         h.policy,
		"POST /v1/policy":        h.loadPolicy,
		"PUT /v1/policy/params":  h.setParams,
		"GET /v1/features":       h.features,
		"GET /v1/retrain":        h.retrain,
		"GET /v1/liteflow":       h.liteflow,
		"POST /v1/liteflow/{app}/unpin": func(r *http.Request) (any, error) {
			return h.liteflowUnpin(r, r.PathValue("app"))
		},
		"GET /v1/stats":   h.stats,
		"POST /v1/reload": h.reload,
	} {
		code := http.StatusOK
		if pattern == "POST /v1/models" {
			code = http.StatusCreated
		}
		m.Handle(pattern, serve(ep, code))
	}
	return m
}

// serve answers a matched request with ep's result as JSON (code on
// success), or its error as the API's JSON error body.
func serve(ep endpoint, code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := w.(*muxAnswers); ok {
			m.endpoint = true
		}
		if r.URL.RawQuery != "" {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "query parameters are not accepted"})
			return
		}
		out, err := ep(r)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{code: http.StatusInternalServerError, msg: err.Error()}
			}
			writeJSON(w, ae.code, ErrorResponse{Error: ae.msg, VerifierLog: ae.log})
			return
		}
		writeJSON(w, code, out)
	})
}

// ServeHTTP implements http.Handler: the ServeMux routes. Its own
// answers (404 for an unknown path, 405 with the Allow header for a known
// path with the wrong method, a redirect to the clean path) keep their
// status and headers but get the API's JSON error body instead of text.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(&muxAnswers{ResponseWriter: w, r: r}, r)
}

// muxAnswers rewrites the ServeMux's own answers into JSON; an endpoint
// (serve) marks the response as its own and passes through untouched.
type muxAnswers struct {
	http.ResponseWriter
	r        *http.Request
	endpoint bool // an endpoint answers: pass through
	dropBody bool // the mux answers: its text body is replaced
}

func (m *muxAnswers) WriteHeader(code int) {
	if m.endpoint || m.dropBody {
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.dropBody = true
	hd := m.Header()
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("no endpoint %s", m.r.URL.Path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("%s %s: method not allowed (allowed: %s)", m.r.Method, m.r.URL.Path, hd.Get("Allow"))
	default:
		msg = fmt.Sprintf("%s %s: %s", m.r.Method, m.r.URL.Path, http.StatusText(code))
		if loc := hd.Get("Location"); loc != "" {
			msg += ": see " + loc
		}
	}
	hd.Del("Content-Length")
	writeJSON(m.ResponseWriter, code, ErrorResponse{Error: msg})
}

// Unwrap lets http.ResponseController reach the server's writer.
func (m *muxAnswers) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func (m *muxAnswers) Write(b []byte) (int, error) {
	if m.endpoint {
		return m.ResponseWriter.Write(b)
	}
	if !m.dropBody {
		m.WriteHeader(http.StatusOK)
	}
	return len(b), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorResponse{Error: "admin: encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// decode reads a strict JSON body into v: size-limited, JSON content type
// (or none), no unknown fields, nothing after the value.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "content type %q: want application/json", ct)
		}
	}
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	return decodeBody(body, v)
}

// decodeBody is decode's strict JSON reader (fuzzed).
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "empty request body: want a JSON object")
		}
		return errorf(http.StatusBadRequest, "bad request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodyBytes)
		}
		return errorf(http.StatusBadRequest, "bad request body: data after the JSON value")
	}
	return nil
}

// maxPathLen bounds file paths in requests (PATH_MAX).
const maxPathLen = 4096

// checkPath validates a file path laked is asked to open.
func checkPath(what, p string) (string, error) {
	switch {
	case p == "":
		return "", errorf(http.StatusBadRequest, "%s: path is required", what)
	case len(p) > maxPathLen:
		return "", errorf(http.StatusBadRequest, "%s: path is %d bytes, the limit is %d", what, len(p), maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return "", errorf(http.StatusBadRequest, "%s: path contains a NUL byte", what)
	case !filepath.IsAbs(p):
		return "", errorf(http.StatusBadRequest, "%s: path %q is not absolute (laked resolves it, not lakectl's directory)", what, p)
	}
	return filepath.Clean(p), nil
}

func (h *Handler) status(*http.Request) (any, error) {
	srv := h.d.Server
	out := StatusResponse{
		Version:       h.d.Version,
		Started:       h.d.Started,
		UptimeSeconds: h.d.Now().Sub(h.d.Started).Seconds(),
		Sessions:      []Session{},
		Models:        len(srv.Models()),
		Features:      h.d.Features != nil,
	}
	for _, s := range srv.Sessions() {
		out.Sessions = append(out.Sessions, Session{ClientID: s.ClientID, Transport: s.Transport, Contexts: s.Contexts})
	}
	if h.d.Policy != nil {
		st := h.policyStatus()
		out.Policy = &st
	}
	return out, nil
}

func (h *Handler) policyStatus() PolicyStatus {
	st := h.d.Policy.Status()
	return PolicyStatus{Active: st.Active, Kernel: st.Kernel, Note: st.Note}
}

func (h *Handler) models(*http.Request) (any, error) {
	out := ModelsResponse{Models: []Model{}}
	for _, m := range h.d.Server.Models() {
		out.Models = append(out.Models, modelOf(m))
	}
	return out, nil
}

func (h *Handler) findModel(id uint32) (Model, bool) {
	for _, m := range h.d.Server.Models() {
		if m.ID == id {
			return modelOf(m), true
		}
	}
	return Model{}, false
}

// callLoadModel runs the caller's loader, turning a panic on a hostile
// file into an error.
func (h *Handler) callLoadModel(kind, path string, data []byte) (m laked.Model, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("model loader panicked: %v", p)
		}
	}()
	m, err = h.d.LoadModel(kind, path, data)
	if err == nil && m == nil {
		err = errors.New("model loader returned no model")
	}
	return m, err
}

func (h *Handler) loadModel(r *http.Request) (any, error) {
	var req LoadModelRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.ID == nil {
		return nil, errorf(http.StatusBadRequest, "load model: \"id\" is required")
	}
	if !h.kinds[req.Kind] {
		kinds := make([]string, 0, len(h.kinds))
		for k := range h.kinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return nil, errorf(http.StatusBadRequest, "load model: kind %q: want one of %s", req.Kind, strings.Join(kinds, ", "))
	}
	path, err := checkPath("load model", req.Path)
	if err != nil {
		return nil, err
	}
	if h.d.LoadModel == nil {
		return nil, errorf(http.StatusNotImplemented, "load model: this laked cannot load models at run time")
	}
	id := *req.ID
	// Read and build the model outside the lock (a slow or large file
	// holds up nobody else), from a regular file of bounded size only,
	// and give up as soon as the caller is gone.
	ctx := r.Context()
	data, err := regfile.ReadFile(ctx, path, h.d.MaxModelBytes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errorf(http.StatusServiceUnavailable, "load model %d: caller gone: %v", id, ctx.Err())
		}
		return nil, errorf(http.StatusUnprocessableEntity, "load model %d: %s: %v", id, path, err)
	}
	m, err := h.callLoadModel(req.Kind, path, data)
	if err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "load model %d: %s %s: %v", id, req.Kind, path, err)
	}
	if err := h.lock(r); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	_, exists := h.findModel(id)
	switch {
	case exists && !req.Replace:
		return nil, errorf(http.StatusConflict, "load model: model %d is already served (set \"replace\": true to swap it)", id)
	case !exists && req.Replace:
		return nil, errorf(http.StatusNotFound, "replace model %d: not served (load it without \"replace\")", id)
	}
	handled := false
	if req.Replace && req.Kind == KindLiteFlow && h.d.LiteFlowLoad != nil {
		if handled, err = h.d.LiteFlowLoad(id, m); err != nil {
			if errors.Is(err, kapp.ErrShape) {
				return nil, errorf(http.StatusConflict, "replace model %d: %v", id, err)
			}
			return nil, errorf(http.StatusUnprocessableEntity, "replace model %d: %v", id, err)
		}
	}
	if handled {
		h.d.Logger.Info().Uint32("model", id).Msg("admin: LiteFlow snapshot loaded by hand; the app is pinned")
	} else if req.Replace {
		if _, err := h.d.Server.ReplaceModel(id, m); err != nil {
			switch {
			case errors.Is(err, laked.ErrModelNotFound):
				return nil, errorf(http.StatusNotFound, "replace model %d: %v", id, err)
			case errors.Is(err, laked.ErrModelShape):
				return nil, errorf(http.StatusConflict, "replace model %d: %v", id, err)
			}
			return nil, errorf(http.StatusUnprocessableEntity, "replace model %d: %v", id, err)
		}
	} else if err := h.d.Server.RegisterModel(id, m); err != nil {
		if errors.Is(err, laked.ErrModelExists) {
			return nil, errorf(http.StatusConflict, "load model %d: %v", id, err)
		}
		return nil, errorf(http.StatusUnprocessableEntity, "load model %d: %v", id, err)
	}
	out, ok := h.findModel(id)
	if !ok {
		return nil, fmt.Errorf("load model %d: not listed after loading", id)
	}
	h.d.Logger.Info().Uint32("model", id).Str("kind", req.Kind).Str("path", path).Uint64("version", out.Version).Msg("admin: model loaded")
	return out, nil
}

func (h *Handler) unloadModel(raw string) (any, error) {
	id, err := strconv.ParseUint(raw, 10, 32)
	if err != nil || raw == "" || (len(raw) > 1 && raw[0] == '0') || raw[0] == '+' {
		return nil, errorf(http.StatusBadRequest, "unload model: id %q is not a decimal uint32", raw)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, _ := h.findModel(uint32(id))
	if err := h.d.Server.UnregisterModel(uint32(id)); err != nil {
		if errors.Is(err, laked.ErrModelNotFound) {
			return nil, errorf(http.StatusNotFound, "unload model %d: not served", id)
		}
		return nil, fmt.Errorf("unload model %d: %w", id, err)
	}
	h.d.Logger.Info().Uint64("model", id).Str("name", prev.Name).Msg("admin: model unloaded")
	return prev, nil
}

func (h *Handler) needPolicy() error {
	if h.d.Policy == nil {
		return errorf(http.StatusNotFound, "no policy engine: laked runs without placement policies")
	}
	return nil
}

func (h *Handler) policyResponse() PolicyResponse {
	e := h.d.Policy
	c := e.Counts()
	return PolicyResponse{
		Status:  h.policyStatus(),
		Params:  paramsOf(e.Params()),
		Counts:  Counts{CPU: c.CPU, GPU: c.GPU, Errors: c.Errors},
		Shipped: policy.Shipped(),
	}
}

func (h *Handler) policy(*http.Request) (any, error) {
	if err := h.needPolicy(); err != nil {
		return nil, err
	}
	return h.policyResponse(), nil
}

func (h *Handler) loadPolicy(r *http.Request) (any, error) {
	if err := h.needPolicy(); err != nil {
		return nil, err
	}
	var req LoadPolicyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if (req.File == "") == (req.Shipped == "") {
		return nil, errorf(http.StatusBadRequest, "load policy: give exactly one of \"file\" or \"shipped\"")
	}
	var err error
	if err := h.lock(r); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	if req.Shipped != "" {
		if !contains(policy.Shipped(), req.Shipped) {
			return nil, errorf(http.StatusBadRequest, "load policy: unknown shipped policy %q (have %s)", req.Shipped, strings.Join(policy.Shipped(), ", "))
		}
		err = h.d.Policy.LoadShipped(req.Shipped)
	} else {
		path, perr := checkPath("load policy", req.File)
		if perr != nil {
			return nil, perr
		}
		err = h.d.Policy.LoadFile(path)
	}
	if err != nil {
		var le *policy.LoadError
		switch {
		case errors.As(err, &le):
			// The message already carries the verifier log's tail; the
			// full log goes in its own field.
			msg, _, _ := strings.Cut(le.Error(), "\nverifier log:")
			return nil, &apiError{code: http.StatusUnprocessableEntity, msg: msg, log: le.VerifierLog()}
		case errors.Is(err, policy.ErrClosed):
			return nil, errorf(http.StatusServiceUnavailable, "load policy: %v", err)
		}
		return nil, errorf(http.StatusUnprocessableEntity, "load policy: %v", err)
	}
	st := h.d.Policy.Status()
	h.d.Logger.Info().Str("policy", st.Active).Bool("kernel", st.Kernel).Msg("admin: policy swapped")
	return h.policyResponse(), nil
}

func (h *Handler) setParams(r *http.Request) (any, error) {
	if err := h.needPolicy(); err != nil {
		return nil, err
	}
	var u ParamsUpdate
	if err := decode(r, &u); err != nil {
		return nil, err
	}
	if err := h.lock(r); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	p := h.d.Policy.Params()
	if u.GPUMinBatch != nil {
		p.GPUMinBatch = *u.GPUMinBatch
	}
	if u.GPUMaxUtilPct != nil {
		p.GPUMaxUtilPct = *u.GPUMaxUtilPct
	}
	if u.GPUMinMemMiB != nil {
		p.GPUMinMemMiB = *u.GPUMinMemMiB
	}
	if u.GPUBatchNs != nil {
		p.GPUBatchNs = *u.GPUBatchNs
	}
	if u.KernelGPUSharePct != nil {
		p.KernelGPUSharePct = *u.KernelGPUSharePct
	}
	if err := h.d.Policy.SetParams(p); err != nil {
		if errors.Is(err, policy.ErrInvalidParams) {
			return nil, errorf(http.StatusBadRequest, "set policy params: %v", err)
		}
		if errors.Is(err, policy.ErrClosed) {
			return nil, errorf(http.StatusServiceUnavailable, "set policy params: %v", err)
		}
		return nil, errorf(http.StatusUnprocessableEntity, "set policy params: %v", err)
	}
	h.d.Logger.Info().Interface("params", paramsOf(p)).Msg("admin: policy params set")
	return h.policyResponse(), nil
}

func (h *Handler) retrain(*http.Request) (any, error) {
	if h.d.Retrain == nil {
		return nil, errorf(http.StatusNotFound, "this laked does not retrain LinnOS models (config key retrain.linnos_devices)")
	}
	out := h.d.Retrain()
	if out.Devices == nil {
		out.Devices = []retrain.DeviceStatus{}
	}
	return out, nil
}

func (h *Handler) liteflowUnpin(r *http.Request, app string) (any, error) {
	var req LiteFlowUnpinRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if h.d.LiteFlowUnpin == nil {
		return nil, errorf(http.StatusNotImplemented, "unpin %s: this laked runs no LiteFlow app", app)
	}
	if err := h.lock(r); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	if err := h.d.LiteFlowUnpin(app, req.Restart); err != nil {
		if errors.Is(err, kapp.ErrNoApp) {
			return nil, errorf(http.StatusNotFound, "unpin %s: %v", app, err)
		}
		return nil, errorf(http.StatusConflict, "unpin %s: %v", app, err)
	}
	h.d.Logger.Info().Str("app", app).Bool("restart", req.Restart).Msg("admin: LiteFlow app unpinned")
	return h.liteflow(r)
}

func (h *Handler) liteflow(*http.Request) (any, error) {
	out := LiteFlowResponse{Apps: []kapp.Status{}}
	if h.d.LiteFlow != nil {
		out.Apps = append(out.Apps, h.d.LiteFlow()...)
	}
	return out, nil
}

func (h *Handler) features(*http.Request) (any, error) {
	if h.d.Features == nil {
		return nil, errorf(http.StatusNotFound, "no feature registry attached to this laked")
	}
	out := FeaturesResponse{Schemas: []FeatureSchema{}}
	schemas, err := h.d.Features.Schemas()
	if err != nil {
		out.Error = err.Error()
	}
	for _, s := range schemas {
		if s == nil {
			continue
		}
		fs := FeatureSchema{ID: uint32(s.ID()), Name: s.Name(), Fields: []FeatureField{}, History: s.History(), MaxKeys: s.MaxKeys(), RecordSize: s.RecordSize()}
		for _, f := range s.Fields() {
			fs.Fields = append(fs.Fields, FeatureField{Name: f.Name, Type: f.Type.String(), Count: f.Count, Offset: f.Offset})
		}
		keys, err := h.d.Features.Keys(s.ID())
		if err != nil {
			fs.Keys = -1
			if out.Error == "" {
				out.Error = err.Error()
			}
		} else {
			fs.Keys = len(keys)
		}
		out.Schemas = append(out.Schemas, fs)
	}
	return out, nil
}

func (h *Handler) stats(*http.Request) (any, error) {
	return statsOf(h.d.Server.Stats()), nil
}

func (h *Handler) reload(r *http.Request) (any, error) {
	// An empty body or an empty JSON object; nothing else is meaningful.
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var empty struct{}
		if err := decodeBody(bytes.NewReader(body), &empty); err != nil {
			return nil, err
		}
	}
	if h.d.Reload == nil {
		return nil, errorf(http.StatusNotImplemented, "reload: this laked cannot reload")
	}
	if err := h.lock(r); err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	if err := h.d.Reload(); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "reload: %v", err)
	}
	h.d.Logger.Info().Msg("admin: reloaded")
	return ReloadResponse{Reloaded: true}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
