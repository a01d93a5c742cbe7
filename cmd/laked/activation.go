package main

import (
	"fmt"
	"net"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked/sdactivate"
)

// Names laked gives the sockets a service manager passes it
// (FileDescriptorName= in deploy/laked.socket and
// deploy/laked-admin.socket); without FileDescriptorName= systemd names a
// socket after its unit, which is accepted too.
var passedNames = map[string]string{
	"client": "client", "laked.socket": "client",
	"admin": "admin", "laked-admin.socket": "admin",
}

// passedSockets are the listeners a service manager passed laked (socket
// activation); nil fields were not passed. Passed sockets replace the
// configured paths: the manager created them (deploy/*.socket sets their
// mode) and keeps them open across laked restarts, so clients connecting
// meanwhile wait in the backlog.
type passedSockets struct {
	client *net.UnixListener
	admin  *net.UnixListener
}

// takePassedSockets takes the sockets passed to laked, if any. A socket
// with a name laked does not know, or two with the same role, is an
// error: the units and laked disagree.
func takePassedSockets(log zerolog.Logger) (*passedSockets, error) {
	ls, err := sdactivate.Listeners()
	if err != nil {
		return nil, err
	}
	p := &passedSockets{}
	for _, l := range ls {
		var slot **net.UnixListener
		switch passedNames[l.Name] {
		case "client":
			slot = &p.client
		case "admin":
			slot = &p.admin
		}
		if slot == nil || *slot != nil {
			for _, l := range ls {
				l.Close()
			}
			if slot == nil {
				return nil, fmt.Errorf("socket activation: passed a socket named %q; laked takes client and admin (FileDescriptorName=)", l.Name)
			}
			return nil, fmt.Errorf("socket activation: two sockets for %s", passedNames[l.Name])
		}
		*slot = l.UnixListener
	}
	return p, nil
}

// close closes the passed sockets not yet handed to a server.
func (p *passedSockets) close() {
	if p == nil {
		return
	}
	for _, l := range []**net.UnixListener{&p.client, &p.admin} {
		if *l != nil {
			(*l).Close()
			*l = nil
		}
	}
}

// logPassed reports serving a passed socket, warning when it is not at
// the path the config names (clients following the config would miss it).
func logPassed(log zerolog.Logger, key, configured string, l *net.UnixListener) {
	addr := l.Addr().String()
	if configured != "" && addr != configured {
		log.Warn().Str("passed", addr).Str(key, configured).Msg("the passed socket is not where the config key says; serving the passed one")
		return
	}
	log.Info().Str("socket", addr).Msg("listening on a socket the service manager passed")
}
