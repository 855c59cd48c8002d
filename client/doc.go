// Package client is the Go client of Flashstock's HTTP API as the load
// generator (loadgen), the fault suite (faults) and the end-to-end tests use
// it: one way to send a request, one way to read what the answer means, and
// one checker of a sale's books.
//
//   - Client sends requests to a set of targets, round-robin, skipping for
//     500 ms a target that refused a connection; it names shoppers through
//     an Identity (X-User-ID, or a minted HS256 JWT), sends the admin token
//     where asked, reads at most 1 MiB of a body and bounds every request
//     by a timeout.
//   - Classify turns an answer (status and API error code) into an Outcome.
//     Whether an outcome is definite (the purchase did not happen) or
//     unknown (it may have been committed) is decided by sale's error
//     table, the one the server answers from: only unknown_outcome among
//     the table's answers leaves the outcome open; so do transport errors,
//     timeouts and 5xx answers the table does not make.
//   - Check judges the evidence a run gathered (what shoppers were told,
//     what the server's counters say, what replays of request IDs return,
//     what the order store holds) against the invariants: no oversell, no
//     lost confirmed order, no duplicate order, per-user limits, replays
//     return the original order, the store holds every confirmed order
//     exactly once. ReadStore gathers the store's part through an
//     OrderStore; client/storecheck reads the sharded MySQL store, so that
//     importing this package does not link a SQL driver.
//
// The package imports sale and small internal helpers only, never the
// engine: it sees Flashstock as its shoppers do.
package client
