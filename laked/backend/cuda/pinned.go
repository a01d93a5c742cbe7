package cuda

import (
	"slices"
	"sort"
	"unsafe"
)

// hostRange is a page-locked host range [lo, hi).
type hostRange struct{ lo, hi uintptr }

// hostRanges is the set of host ranges the backend registered
// (cuMemHostRegister), sorted and never overlapping. It is immutable:
// registering and unregistering make a new one (Backend.pinned), so a
// batch can ask whether its runs are page-locked without a lock.
type hostRanges []hostRange

func rangeOf(p []byte) (lo, hi uintptr) {
	lo = uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return lo, lo + uintptr(len(p))
}

// with returns rs plus mem.
func (rs hostRanges) with(mem []byte) hostRanges {
	lo, hi := rangeOf(mem)
	i := sort.Search(len(rs), func(i int) bool { return rs[i].lo > lo })
	return slices.Insert(slices.Clone(rs), i, hostRange{lo, hi})
}

// without returns rs less the range starting at base.
func (rs hostRanges) without(base unsafe.Pointer) hostRanges {
	return slices.DeleteFunc(slices.Clone(rs), func(r hostRange) bool { return r.lo == uintptr(base) })
}

// contains reports whether p lies wholly inside one range (an empty p
// does: nothing of it is copied).
func (rs hostRanges) contains(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	lo, hi := rangeOf(p)
	i := sort.Search(len(rs), func(i int) bool { return rs[i].lo > lo }) // first range after lo
	return i > 0 && hi <= rs[i-1].hi
}
