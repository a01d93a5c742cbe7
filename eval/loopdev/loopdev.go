package loopdev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Device is an attached loop device.
type Device struct {
	// Path is the device node, e.g. /dev/loop3.
	Path string
	// File is the backing file.
	File string
	// removeFile says Detach also deletes File.
	removeFile bool
}

// Options configures Create.
type Options struct {
	// SizeBytes of the backing file (must be > 0 and a multiple of 4096).
	SizeBytes int64
	// DirectIO attaches with --direct-io=on, so the loop driver reads the
	// backing file with O_DIRECT and requests reach the real disk
	// underneath instead of the page cache.
	DirectIO bool
	// Fill writes the whole file first (so reads hit allocated blocks,
	// not holes); otherwise the file is sparse.
	Fill bool
}

// Create makes a backing file in dir and attaches a loop device to it. It
// needs root and losetup. Call Detach when done (it also removes the file).
func Create(ctx context.Context, dir string, opts Options) (*Device, error) {
	if opts.SizeBytes <= 0 || opts.SizeBytes%4096 != 0 {
		return nil, fmt.Errorf("loopdev: size %d is not a positive multiple of 4096", opts.SizeBytes)
	}
	f, err := os.CreateTemp(dir, "lake-loop-*.img")
	if err != nil {
		return nil, fmt.Errorf("loopdev: backing file: %w", err)
	}
	name := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(name)
		}
	}()
	if opts.Fill {
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i*7 + i>>8)
		}
		for left := opts.SizeBytes; left > 0; {
			n := min(left, int64(len(buf)))
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return nil, fmt.Errorf("loopdev: fill %s: %w", name, err)
			}
			left -= n
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("loopdev: sync %s: %w", name, err)
		}
	} else if err := f.Truncate(opts.SizeBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("loopdev: size %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("loopdev: close %s: %w", name, err)
	}
	d, err := Attach(ctx, name, opts.DirectIO)
	if err != nil {
		return nil, err
	}
	d.removeFile = true
	ok = true
	return d, nil
}

// Attach attaches a loop device to an existing file (which Detach leaves
// in place).
func Attach(ctx context.Context, file string, directIO bool) (*Device, error) {
	bin, err := exec.LookPath("losetup")
	if err != nil {
		return nil, fmt.Errorf("loopdev: losetup not found: %w", err)
	}
	args := []string{"-f", "--show"}
	if directIO {
		args = append(args, "--direct-io=on")
	}
	args = append(args, file)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("loopdev: losetup %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	path := strings.TrimSpace(string(out))
	if n, ok := strings.CutPrefix(path, "/dev/loop"); !ok || n == "" || strings.Trim(n, "0123456789") != "" {
		return nil, fmt.Errorf("loopdev: unexpected losetup output %q", path)
	}
	return &Device{Path: path, File: file}, nil
}

// Detach detaches the loop device and removes a backing file that Create
// made. It is safe to call on nil and more than once.
func (d *Device) Detach() error {
	if d == nil || d.Path == "" {
		return nil
	}
	var errs []error
	if out, err := exec.Command("losetup", "-d", d.Path).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("loopdev: losetup -d %s: %w: %s", d.Path, err, strings.TrimSpace(string(out))))
	}
	if d.removeFile {
		if err := os.Remove(d.File); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("loopdev: remove %s: %w", d.File, err))
		}
	}
	d.Path = ""
	return errors.Join(errs...)
}
