package blktrace

// DepthTracker recomputes the number of requests in flight per device from
// the event stream, for consumers that need a queue depth which does not
// drift: the kernel counter in Event.QueueDepth grows by one for every
// completion the tracer misses (see Stats), while here a request whose
// completion never arrives is forgotten after MaxAgeNs. Not safe for
// concurrent use.
type DepthTracker struct {
	// MaxAgeNs is how long an issued request counts as in flight without
	// a completion; 0 means one second.
	MaxAgeNs uint64
	devs     map[uint32]*devDepth
}

type devDepth struct {
	inflight map[uint64]uint64 // sector -> issue ns
	lastScan uint64
}

// Observe updates the tracker with e and returns, for an issue, the number
// of requests in flight on e.Dev before it (and 0 for a completion).
func (d *DepthTracker) Observe(e Event) uint32 {
	if d.devs == nil {
		d.devs = map[uint32]*devDepth{}
	}
	maxAge := d.MaxAgeNs
	if maxAge == 0 {
		maxAge = 1e9
	}
	dd := d.devs[e.Dev]
	if dd == nil {
		dd = &devDepth{inflight: map[uint64]uint64{}, lastScan: e.IssueNs}
		d.devs[e.Dev] = dd
	}
	switch e.Kind {
	case KindComplete:
		if t, ok := dd.inflight[e.Sector]; ok && t == e.IssueNs {
			delete(dd.inflight, e.Sector)
		}
		return 0
	case KindIssue:
		if e.IssueNs > dd.lastScan+maxAge {
			for s, t := range dd.inflight {
				if t+maxAge < e.IssueNs {
					delete(dd.inflight, s)
				}
			}
			dd.lastScan = e.IssueNs
		}
		n := uint32(len(dd.inflight))
		if _, dup := dd.inflight[e.Sector]; dup {
			n-- // the same sector re-issued: the old entry is replaced
		}
		dd.inflight[e.Sector] = e.IssueNs
		return n
	}
	return 0
}
