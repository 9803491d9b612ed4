// Package natsbus connects Gatehouse components to NATS JetStream and runs an embedded NATS
// server for development and tests.
//
// In production every component connects to the same external NATS cluster (Options.URL). When
// no URL is given, Connect starts a NATS server with JetStream inside the process, storing its
// data under Options.StoreDir: one process then holds the whole system, which is what `gatehouse`
// does in dev mode and what the integration tests use.
package natsbus
