// Package faults is Flashstock's fault-injection suite, in the manner of
// Jepsen: it runs a real three-node cluster, injects real faults while
// shoppers buy, records every request and its answer, and then checks the
// recorded history and the cluster's final state against the invariants a
// flash sale must keep.
//
// # Set-up
//
// scripts/netns.sh builds a private network: one network namespace per node
// (fs-n0..fs-n2, 10.77.0.11-13), joined through veth pairs to a bridge that
// lives in a namespace of its own (fs-hub), plus 10.77.0.1 in the root
// namespace for the suite's shoppers and for MariaDB. The bridge is kept out
// of the root namespace so that a host firewall (Docker's FORWARD policy
// DROP with br_netfilter) neither blocks the cluster nor has to be touched.
// MariaDB is started with scripts/mariadb.sh (which listens on 127.0.0.1
// only) and reached by the nodes through a TCP forwarder on 10.77.0.1:3306
// run by the suite. Every scenario gets a fresh cluster (node binary built
// from ./cmd/node), fresh data directories and two fresh databases. The
// nodes run with --bootstrap-expect 3, --gossip-profile local,
// --raft-heartbeat-timeout 400ms, --dead-node-grace 5s, --shards 4,
// --trust-user-header and the two databases as --orders-dsn, and with the
// cluster's keys on, as production runs: a fresh CA, a certificate per node
// and a gossip key per scenario (keys.go), so that every invariant is
// checked with gossip encrypted and Raft and actor traffic over mutual TLS.
//
// # Faults
//
// Each fault is a bounded scenario (Config.Duration, repeated in cycles on
// long runs; each fault held for Config.Hold, by default 8-15 s, past
// --dead-node-grace): SIGKILL of the leader of the hot item's shard and restart;
// SIGKILL of a follower and restart; SIGSTOP of the leader for 5 s and
// SIGCONT; a partition that cuts the leader off from the other nodes (but
// not from shoppers or MariaDB); a 1|2 split with a follower alone;
// packet delay and loss on every node (tc netem delay 50ms 20ms loss 5%,
// or, on kernels without sch_netem, the same behaviour from a userspace
// NFQUEUE delayer, see Delayer); MariaDB stopped mid-sale and restarted;
// the leader's disk filled, and slowed to 20 write IOPS (disk.go: each node
// on a loop-mounted ext4 of its own, in a blkio cgroup of its own). Admins
// restock during every sale, some restocks while the fault is on, and one
// scenario runs with a payment window: buyers pay about half their orders,
// the rest expire and their units are sold again, so the checker judges
// stock that comes back too.
//
// # Workload and history
//
// Shoppers buy the hot item (large stock, one new user per purchase, 1-3
// units) at a paced rate, and a few buy a limited item (small stock,
// per_user_limit 2, a small pool of users) until it sells out. Each purchase
// has its own request_id; shoppers use package client (the nodes
// round-robin, skipping one that refused a connection) and retry what the
// sale did not decide (429, 503, 5xx, timeouts) with the same request_id, a
// bounded number of times, spaced by internal/backoff. Every attempt is a
// history event: request_id, user, node, status and error code, order_id,
// start and end, the client's classification of the answer (client.Classify,
// from sale's error table) and the outcome it stands for: ok, fail (the sale
// refused it), shed (429, 503 overloaded or unavailable: this attempt was
// not applied) or info (unknown: it may have committed).
//
// # Checker
//
// After the run, every purchase whose outcome is unknown is retried with
// its request_id until the sale decides it (a shed answer does not settle
// it: an earlier attempt may still commit). Every node's view of the items,
// a lookup of every confirmed request_id on every node and the order store
// (client/storecheck) are then judged by client.Check, the checker the load
// generator uses: (1) no oversell: confirmed units <= stock, and on every
// node remaining = stock - sold and sold = confirmed units; (2) no lost
// order: every confirmed request_id returns its order (200, same order_id)
// on every node, and every confirmed order is in MySQL exactly once after
// the flush, with the stored units equal to the units sold; (3) no
// duplicate: one order per request_id and one request_id per order; (4)
// per-user limits hold. Evaluate adds what only the suite measures: every
// unknown purchase settled, and (5) availability: the longest gap without a
// confirmed purchase of the hot item, and the time to the first confirmation
// after the fault heals. The suite prints a table of faults x invariants and
// fails on any violation.
//
// # Running
//
// The suite needs Linux, root, iproute2 (ip, tc), iptables or nftables, and
// MariaDB (mariadb-server, mariadb-client). It refuses to start, with a
// message naming the missing package, otherwise.
//
//	FLASHSTOCK_FAULTS=1 go test -count=1 -timeout 15m -v ./faults/    # every fault, short (CI)
//	go run ./faults/cmd/faultsuite --duration 2m                      # longer runs
//	go run ./faults/cmd/faultsuite --faults kill-leader,partition-leader
//
// The history (history.jsonl), node logs and the report of every scenario go
// to the output directory (.tmp/faults/<time>/); the CLI writes the table to
// docs/reliability.md. See docs/reliability.md for the method.
package faults
