package vecmath

import (
	"fmt"
	"sync/atomic"
)

// Level is a set of vector instructions a kernel may use. Higher levels
// include the lower ones.
type Level int32

// Levels, lowest first.
const (
	Scalar     Level = iota // portable Go
	AVX2                    // 256-bit AVX2
	AVX512                  // 512-bit AVX-512 F, BW, DQ and VL
	AVX512VNNI              // AVX512 plus VPDPWSSD (int16 dot products)
)

// String names the level.
func (l Level) String() string {
	switch l {
	case Scalar:
		return "scalar"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	case AVX512VNNI:
		return "avx512vnni"
	}
	return fmt.Sprintf("level(%d)", int32(l))
}

// detected is the best level this machine supports (set once in init).
var detected = detect()

// current is the level the kernels use.
var current atomic.Int32

func init() { current.Store(int32(detected)) }

// Detected returns the best level the CPU and operating system support.
func Detected() Level { return detected }

// Current returns the level the kernels use now.
func Current() Level { return Level(current.Load()) }

// Supported returns every level usable on this machine, lowest first.
func Supported() []Level {
	var ls []Level
	for l := Scalar; l <= detected; l++ {
		ls = append(ls, l)
	}
	return ls
}

// SetLevel makes the kernels use level l (at most Detected()) and returns
// the previous level. It is meant for tests and benchmarks that compare the
// levels; calls that run concurrently with it use either level.
func SetLevel(l Level) (Level, error) {
	if l < Scalar || l > detected {
		return Current(), fmt.Errorf("vecmath: level %v not supported here (best is %v)", l, detected)
	}
	return Level(current.Swap(int32(l))), nil
}
