//go:build !linux

package cuda

import "time"

// threadSleep is time.Sleep where there is no nanosleep to call.
func threadSleep(d time.Duration) { time.Sleep(d) }
