// Package loadgen is the Flashstock load generator's engine: it plays flash
// crowds and hot-item hammering against the HTTP API, measures what the
// shoppers see, and then checks the server's books against it.
//
// A run is a Config (validated), Deps (all optional) and one call to Run:
//
//	cfg := loadgen.DefaultConfig()
//	cfg.Scenario, cfg.Workers, cfg.Rate = loadgen.ScenarioCrowd, 0, 0
//	cfg.Targets = []string{"http://127.0.0.1:8080"}
//	rep, err := loadgen.Run(ctx, cfg, loadgen.Deps{Progress: os.Stderr})
//	// err: the run could not be made; rep.Passed(): the books balanced.
//
// Load is open loop (arrivals on a schedule, latency from the due time, a
// bounded number of shoppers in flight and the excess dropped) or closed loop
// (a fixed number of workers). Every run is bounded by a number of arrivals
// and a duration, and every request by a timeout.
//
// Requests, the classification of answers and the verification belong to
// package client, which the fault suite and the tests share: the engine
// sends through a client.Client, records what the shoppers saw as a
// client.History, and judges it with client.Check against the server's item
// counters, sampled order reads and, with Deps.OrderStore, the order store
// (client/storecheck reads MySQL). Latencies go into a log-linear Histogram
// (microsecond resolution, at most 0.79% relative error, fixed memory).
// DESIGN.md explains what is checked and why the bounds are what they are.
package loadgen
