package laked

import "errors"

// GPUFunc runs a batch of a model on a GPU: n records in, n out, with the
// model's record sizes.
type GPUFunc func(in, out []byte, n int) error

// gpuModel is a Model whose batches can also run on a GPU.
type gpuModel struct {
	Model
	gpu GPUFunc
}

// WithGPU serves m with gpu as its GPU path: batches the policy places on
// the GPU run gpu (and fall back to m on the CPU if it fails); gpu must
// compute what m computes. A nil gpu returns m unchanged.
func WithGPU(m Model, gpu GPUFunc) Model {
	if gpu == nil || m == nil {
		return m
	}
	return &gpuModel{Model: m, gpu: gpu}
}

// errGPUShape is returned for a batch whose buffers do not match n.
var errGPUShape = errors.New("laked: gpu batch buffers do not match the item count")

// checkGPUShape returns errGPUShape unless n is positive and inLen and
// outLen bytes are exactly n of info's input and output records.
func checkGPUShape(info ModelInfo, inLen, outLen uint64, n int) error {
	if n <= 0 || inLen != uint64(n)*uint64(info.InputBytes) || outLen != uint64(n)*uint64(info.OutputBytes) {
		return errGPUShape
	}
	return nil
}

// PredictGPU implements GPUModel.
func (g *gpuModel) PredictGPU(in, out []byte, n int) error {
	if err := checkGPUShape(g.Info(), uint64(len(in)), uint64(len(out)), n); err != nil {
		return err
	}
	return g.gpu(in, out, n)
}
