package vecmath

//go:generate go run asmgen.go -out kernels_amd64.s
