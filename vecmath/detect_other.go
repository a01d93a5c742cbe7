//go:build !amd64 || purego

package vecmath

func detect() Level { return Scalar }
