package admin

import (
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos/retrain"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/policy"
)

// DefaultSocket is where laked serves the admin API.
const DefaultSocket = "/run/lake/laked-admin.sock"

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Model kinds LoadModel is asked for, unless Deps.ModelKinds says
// otherwise.
const (
	KindMLP    = "mlp"    // a kernels MLP blob
	KindLinnOS = "linnos" // a linnos weight file
	// KindLiteFlow is a LiteFlow snapshot (liteflow/SNAPSHOT.md); the
	// kernel's lake_liteflow.ko fetches a served one with model_fetch.
	KindLiteFlow = "liteflow"
)

// LiteFlowResponse is GET /v1/liteflow: laked's LiteFlow apps (their
// served model, adaptation and install history; liteflow/kapp).
type LiteFlowResponse struct {
	Apps []kapp.Status `json:"apps"`
}

// LiteFlowUnpinRequest is the body of POST /v1/liteflow/{app}/unpin: the
// app's adapter ships again; with Restart, adaptation starts over from
// the snapshot loaded by hand.
type LiteFlowUnpinRequest struct {
	Restart bool `json:"restart,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
	// VerifierLog holds the kernel verifier's log lines when a policy
	// object was rejected by the verifier.
	VerifierLog []string `json:"verifier_log,omitempty"`
}

// Session is one attached client.
type Session struct {
	ClientID  uint32 `json:"client_id"`
	Transport string `json:"transport"`
	Contexts  int    `json:"contexts"`
}

// PolicyStatus says which policy is active and how it runs.
type PolicyStatus struct {
	Active string `json:"active"`
	Kernel bool   `json:"kernel"` // true: BPF in the kernel; false: the Go twin
	Note   string `json:"note,omitempty"`
}

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	Version       string        `json:"version"`
	Started       time.Time     `json:"started"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	Sessions      []Session     `json:"sessions"`
	Models        int           `json:"models"`
	Policy        *PolicyStatus `json:"policy,omitempty"` // nil: no policy engine
	Features      bool          `json:"features"`         // a feature registry is attached
}

// Model is one served model.
type Model struct {
	ID          uint32 `json:"id"`
	Name        string `json:"name"`
	InputBytes  int    `json:"input_bytes"`
	OutputBytes int    `json:"output_bytes"`
	Version     uint64 `json:"version"`
}

// ModelsResponse is GET /v1/models.
type ModelsResponse struct {
	Models []Model `json:"models"`
}

// LoadModelRequest is POST /v1/models. ID, Kind and Path are required;
// Path must be absolute (it is opened by laked, not by the caller).
// Replace swaps a model already served under ID (same record sizes);
// without it an existing ID is a conflict.
type LoadModelRequest struct {
	ID      *uint32 `json:"id"`
	Kind    string  `json:"kind"`
	Path    string  `json:"path"`
	Replace bool    `json:"replace,omitempty"`
}

// Params are the policy tunables (policy.Params) in JSON.
type Params struct {
	GPUMinBatch   uint32 `json:"gpu_min_batch"`
	GPUMaxUtilPct uint32 `json:"gpu_max_util_pct"`
	GPUMinMemMiB  uint32 `json:"gpu_min_mem_mib"`
	GPUBatchNs    uint64 `json:"gpu_batch_ns"`
	// KernelGPUSharePct is the GPU share reserved for kernel batches.
	KernelGPUSharePct uint32 `json:"kernel_gpu_share_pct"`
}

// ParamsUpdate is PUT /v1/policy/params: the fields present replace the
// current values, absent ones are kept.
type ParamsUpdate struct {
	GPUMinBatch   *uint32 `json:"gpu_min_batch,omitempty"`
	GPUMaxUtilPct *uint32 `json:"gpu_max_util_pct,omitempty"`
	GPUMinMemMiB  *uint32 `json:"gpu_min_mem_mib,omitempty"`
	GPUBatchNs    *uint64 `json:"gpu_batch_ns,omitempty"`
	// KernelGPUSharePct is the GPU share reserved for kernel batches.
	KernelGPUSharePct *uint32 `json:"kernel_gpu_share_pct,omitempty"`
}

// Counts are the policy engine's decisions since start.
type Counts struct {
	CPU    uint64 `json:"cpu"`
	GPU    uint64 `json:"gpu"`
	Errors uint64 `json:"errors"`
}

// PolicyResponse is GET /v1/policy (and the answer to POST /v1/policy and
// PUT /v1/policy/params).
type PolicyResponse struct {
	Status  PolicyStatus `json:"status"`
	Params  Params       `json:"params"`
	Counts  Counts       `json:"counts"`
	Shipped []string     `json:"shipped"` // names POST /v1/policy accepts as "shipped"
}

// LoadPolicyRequest is POST /v1/policy: exactly one of File (an absolute
// path to a compiled policy object) or Shipped (a shipped policy name).
type LoadPolicyRequest struct {
	File    string `json:"file,omitempty"`
	Shipped string `json:"shipped,omitempty"`
}

// FeatureField is one field of a feature schema.
type FeatureField struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Count  int    `json:"count"`
	Offset int    `json:"offset"`
}

// FeatureSchema is one registered feature schema.
type FeatureSchema struct {
	ID         uint32         `json:"id"`
	Name       string         `json:"name"`
	Fields     []FeatureField `json:"fields"`
	History    int            `json:"history"`
	MaxKeys    int            `json:"max_keys"`
	RecordSize int            `json:"record_size"`
	Keys       int            `json:"keys"` // live keys now
}

// RetrainResponse is GET /v1/retrain: per device, the LinnOS model
// retraining (linnos/retrain) status.
type RetrainResponse struct {
	Devices []retrain.DeviceStatus `json:"devices"`
	// Models maps a device key (decimal) to the laked model id its model
	// is served under.
	Models map[string]uint32 `json:"models,omitempty"`
}

// FeaturesResponse is GET /v1/features.
type FeaturesResponse struct {
	Schemas []FeatureSchema `json:"schemas"`
	// Error is set when the registry reported a corrupt entry; the
	// schemas before it are listed.
	Error string `json:"error,omitempty"`
}

// Histogram is a laked histogram snapshot: Counts[i] observations fell at
// or below Bounds[i] (and above Bounds[i-1]); the last count is above
// every bound.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   `json:"sum"`
	Count  uint64    `json:"count"`
}

// StatsResponse is GET /v1/stats: laked.Stats in JSON (durations in
// seconds).
type StatsResponse struct {
	Submissions         uint64            `json:"submissions"`
	Completions         map[string]uint64 `json:"completions"`
	Batches             uint64            `json:"batches"`
	BatchItems          uint64            `json:"batch_items"`
	DecisionsCPU        uint64            `json:"decisions_cpu"`
	DecisionsGPU        uint64            `json:"decisions_gpu"`
	GPUFallbacks        uint64            `json:"gpu_fallbacks"`
	GPUDirectItems      uint64            `json:"gpu_direct_items"` // GPU batch items copied straight from/to a client's registered arena
	GPUStagedItems      uint64            `json:"gpu_staged_items"` // ... staged through laked's buffers
	ServiceTotalSeconds float64           `json:"service_total_seconds"`
	QueueTotalSeconds   float64           `json:"queue_total_seconds"`
	Sessions            int64             `json:"sessions"`
	SessionsServed      uint64            `json:"sessions_served"`
	Overflowed          uint64            `json:"overflowed"`
	BatchSize           Histogram         `json:"batch_size"`
	QueueWait           Histogram         `json:"queue_wait_seconds"`
	ServiceTime         Histogram         `json:"service_time_seconds"`
}

// ReloadResponse is POST /v1/reload.
type ReloadResponse struct {
	Reloaded bool `json:"reloaded"`
}

func histogramOf(h laked.HistogramSnapshot) Histogram {
	return Histogram{Bounds: h.Bounds, Counts: h.Counts, Sum: h.Sum, Count: h.Count()}
}

func statsOf(s laked.Stats) StatsResponse {
	c := s.Completions
	if c == nil {
		c = map[string]uint64{}
	}
	return StatsResponse{
		Submissions: s.Submissions, Completions: c, Batches: s.Batches, BatchItems: s.BatchItems,
		DecisionsCPU: s.DecisionsCPU, DecisionsGPU: s.DecisionsGPU, GPUFallbacks: s.GPUFallbacks,
		GPUDirectItems: s.GPUDirectItems, GPUStagedItems: s.GPUStagedItems,
		ServiceTotalSeconds: s.ServiceTotal.Seconds(), QueueTotalSeconds: s.QueueTotal.Seconds(),
		Sessions: s.Sessions, SessionsServed: s.SessionsServed, Overflowed: s.Overflowed,
		BatchSize: histogramOf(s.BatchSize), QueueWait: histogramOf(s.QueueWait), ServiceTime: histogramOf(s.ServiceTime),
	}
}

func paramsOf(p policy.Params) Params {
	return Params{GPUMinBatch: p.GPUMinBatch, GPUMaxUtilPct: p.GPUMaxUtilPct, GPUMinMemMiB: p.GPUMinMemMiB, GPUBatchNs: p.GPUBatchNs,
		KernelGPUSharePct: p.KernelGPUSharePct}
}

func modelOf(m laked.ModelStatus) Model {
	return Model{ID: m.ID, Name: m.Info.Name, InputBytes: m.Info.InputBytes, OutputBytes: m.Info.OutputBytes, Version: m.Version}
}
