//go:build unix

package regfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Errors ReadFile returns (wrapped with the path).
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// chunk is how much ReadFile reads between two context checks.
const chunk = 1 << 20

// ReadFile returns the contents of the regular file at path, which must
// hold at most max bytes. It opens with O_NONBLOCK, so opening a FIFO
// does not wait for a writer (and the FIFO is then refused), refuses
// anything fstat does not call a regular file, and reads at most max+1
// bytes, in chunks, giving up when ctx ends.
func ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fi.Mode().Type())
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", path, ErrTooLarge, fi.Size(), max)
	}
	// The file may grow after fstat: never read past max+1 bytes.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()))
	lr := io.LimitReader(f, max+1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, err := io.CopyN(&buf, lr, chunk)
		if int64(buf.Len()) > max {
			return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, max)
		}
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}
