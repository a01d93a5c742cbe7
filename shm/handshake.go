package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Handshake messages (PROTOCOL.md, "Handshake"): a client connects to
// laked's unix socket and sends a 64-byte Hello; laked answers with a
// 64-byte Reply carrying the region's memfd in an SCM_RIGHTS control
// message. The connection then stays open for the life of the session:
// either side closing it ends the session.
const (
	HelloMagic   uint32 = 0x484B414C // "LAKH"
	ReplyMagic   uint32 = 0x524B414C // "LAKR"
	HandshakeLen        = 64
	replyMsgLen         = 32
)

// Hello kinds.
const (
	HelloNew      uint32 = 1 // create a region for me
	HelloReattach uint32 = 2 // serve the region whose fd I attach (after a laked restart)
)

// Hello is the client's first message.
type Hello struct {
	Kind   uint32
	Config Config
}

// Reply is laked's answer.
type Reply struct {
	Status     Status
	ClientID   uint32
	RegionSize uint64
	// ResumeHead, for a re-attach, is the submission-ring position laked
	// resumes from: every submission before it was consumed by the laked
	// that went away, and those it did not complete never will be.
	ResumeHead uint32
	Message    string // why, when Status is not OK (at most 32 bytes)
}

// ErrHandshake wraps every handshake decoding error.
var ErrHandshake = errors.New("shm: bad handshake message")

// Encode writes h into a HandshakeLen-byte message.
func (h *Hello) Encode() []byte {
	b := make([]byte, HandshakeLen)
	le := binary.LittleEndian
	le.PutUint32(b[0:], HelloMagic)
	le.PutUint16(b[4:], VersionMajor)
	le.PutUint16(b[6:], VersionMinor)
	le.PutUint32(b[8:], h.Kind)
	le.PutUint32(b[12:], h.Config.SQEntries)
	le.PutUint32(b[16:], h.Config.CQEntries)
	le.PutUint32(b[20:], h.Config.Flags)
	le.PutUint64(b[24:], h.Config.ArenaSize)
	le.PutUint64(b[32:], h.Config.FeaturesSize)
	return b
}

// DecodeHello decodes and validates an untrusted Hello.
func DecodeHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) != HandshakeLen {
		return h, fmt.Errorf("%w: hello is %d bytes, want %d", ErrHandshake, len(b), HandshakeLen)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != HelloMagic {
		return h, fmt.Errorf("%w: hello magic %#x", ErrHandshake, m)
	}
	if v := le.Uint16(b[4:]); v != VersionMajor {
		return h, fmt.Errorf("%w: client speaks protocol %d, laked speaks %d", ErrBadVersion, v, VersionMajor)
	}
	h.Kind = le.Uint32(b[8:])
	h.Config = Config{
		SQEntries:    le.Uint32(b[12:]),
		CQEntries:    le.Uint32(b[16:]),
		Flags:        le.Uint32(b[20:]),
		ArenaSize:    le.Uint64(b[24:]),
		FeaturesSize: le.Uint64(b[32:]),
	}
	for _, x := range b[40:] {
		if x != 0 {
			return h, fmt.Errorf("%w: reserved hello bytes are not zero", ErrHandshake)
		}
	}
	switch h.Kind {
	case HelloNew:
		if err := h.Config.Validate(); err != nil {
			return h, err
		}
	case HelloReattach:
	default:
		return h, fmt.Errorf("%w: hello kind %d", ErrHandshake, h.Kind)
	}
	return h, nil
}

// Encode writes r into a HandshakeLen-byte message.
func (r *Reply) Encode() []byte {
	b := make([]byte, HandshakeLen)
	le := binary.LittleEndian
	le.PutUint32(b[0:], ReplyMagic)
	le.PutUint32(b[4:], uint32(r.Status))
	le.PutUint32(b[8:], r.ClientID)
	le.PutUint32(b[12:], r.ResumeHead)
	le.PutUint64(b[16:], r.RegionSize)
	copy(b[HandshakeLen-replyMsgLen:], r.Message)
	return b
}

// DecodeReply decodes a Reply.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if len(b) != HandshakeLen {
		return r, fmt.Errorf("%w: reply is %d bytes, want %d", ErrHandshake, len(b), HandshakeLen)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != ReplyMagic {
		return r, fmt.Errorf("%w: reply magic %#x", ErrHandshake, m)
	}
	r.Status = Status(int32(le.Uint32(b[4:])))
	r.ClientID = le.Uint32(b[8:])
	r.ResumeHead = le.Uint32(b[12:])
	r.RegionSize = le.Uint64(b[16:])
	msg := b[HandshakeLen-replyMsgLen:]
	for i, c := range msg {
		if c == 0 {
			msg = msg[:i]
			break
		}
	}
	r.Message = string(msg)
	return r, nil
}
