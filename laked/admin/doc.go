// Package admin owns laked's administrative interface: a JSON API over
// HTTP, served on a root-only unix socket (DefaultSocket, mode 0600), that
// reports status, models, the placement policy, the feature registry and
// counters, and loads and unloads models and policies at run time. The
// endpoints are documented in API.md.
//
// New returns the Handler serving the API from a Deps struct (the running
// laked.Server and the optional pieces around it); Listen creates the
// socket; NewHTTPServer wraps the handler with laked's timeouts; Client is
// the small client lakectl uses. The request and response bodies are the
// exported types in api.go, shared by both sides.
//
// Every request body is untrusted: it is size-limited (MaxBodyBytes),
// decoded strictly (unknown fields and trailing data are rejected) and
// validated before anything is touched; errors are 4xx answers with a JSON
// {"error": "..."} body.
package admin
