// Package chserver runs the ClickHouse engine as a loopback server from its shared-library
// build (libchdb.so), for development, demos and tests on machines without a ClickHouse
// installation.
//
// The library is the clickhouse-local program built as a shared object. Serve loads it without
// cgo and runs it with the native (TCP) and HTTP listeners switched on, followed by a query
// that blocks for the life of the process, so the engine keeps serving. Clients reach it only
// through those protocols, exactly as they reach any ClickHouse server: nothing in Gatehouse
// depends on which of the two it talks to.
//
// The native port is served by a relay in front of the engine's own port: the engine aborts
// when a client resets its connection (a client killed with data unread), and the relay ends
// its connections to the engine as a client that hangs up does.
//
// The engine started this way has no authentication. Serve refuses any listen address other
// than a loopback one.
package chserver
