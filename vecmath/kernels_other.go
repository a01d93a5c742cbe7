//go:build !amd64 || purego

package vecmath

func dotPairs16Vec(Level, []int32, []int32, []int32, bool) int          { return 0 }
func mulAccI64Vec(Level, []int64, []int64, []int32) int                 { return 0 }
func dotI64Vec(Level, []int32, []int64) (int64, int)                    { return 0, 0 }
func mulAddColsF32Vec(Level, []float32, []float32, []float32, bool) int { return 0 }

func dotI64x2Vec(Level, []int32, []int64, []int64) (int64, int64, int) { return 0, 0, 0 }

func requantVec(Level, []int32, []int32, []int32, []int32, []int32, int32, int32, int32) int {
	return 0
}

func mulAddLanesF32Vec(Level, []float32, []float32, []float32, int, bool, bool) bool { return false }

func mulAccWideVec(Level, []int64, []int64, []int64) int { return 0 }
func dotWideVec(Level, []int64, []int64) (int64, int)    { return 0, 0 }

func quantizeF32Vec(Level, []int32, []float32, float32, int32, int32, int32) int { return 0 }

func net8Vec(Level, []net8Desc, []int32, []int32, []int32, uint64, int32, int32) bool {
	return false
}

func mulAccPackedVec(Level, []int64, []int32, []int32) int { return 0 }

const haveLanes = false

func net8LanesVec(Level, []net8Desc, []int32, []int32, int32, int32) {}

func reluF32Vec(Level, []float32) int { return 0 }

func mulCompress2F32Vec(Level, []float32, []float32, []float32, []float32, []float32) (int, int) {
	return 0, 0
}

func mulAccIdxVec(Level, []int64, []int32, []int32, []int32, int, int) bool { return false }
