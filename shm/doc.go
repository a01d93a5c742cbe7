// Package shm owns lake's shared-memory region: its byte layout (the one
// specification, PROTOCOL.md, that Go and C both follow), the submission
// and completion rings, the slot encodings, the client-side arena
// allocator, the doorbells and the unix-socket handshake that hands a
// region to a client.
//
// A region is untrusted memory: the other side can write any byte at any
// time. Everything here therefore copies before it validates, masks every
// ring index, and checks every offset against the region it was given.
// Nothing in this package panics on bad region contents.
//
// The layout is little-endian and assumes 64-byte cache lines; lake
// supports little-endian 64-bit Linux hosts (x86-64, arm64).
package shm
