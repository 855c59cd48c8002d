package orders

import (
	"hash/fnv"
	"strconv"
)

// Route returns the database and the table within that database that hold
// the orders of userID, for a store of databases databases with tables order
// tables each.
//
// Routing is by user, not by order, so that all orders of one user sit in one
// table and ListByUser reads a single table. The hash is 64-bit FNV-1a of the
// user ID bytes: db = h mod databases and table = (h div databases) mod tables,
// so the table index uses bits the database index did not. Route is pure and
// stable across processes, platforms and releases: changing it moves every
// stored order, so route_test.go pins its output.
//
// Route panics if databases or tables is less than 1.
func Route(userID string, databases, tables int) (db, table int) {
	if databases < 1 || tables < 1 {
		panic("orders: Route needs at least one database and one table, got " +
			strconv.Itoa(databases) + " and " + strconv.Itoa(tables))
	}
	h := fnv.New64a()
	h.Write([]byte(userID)) // hash.Hash.Write never returns an error
	sum := h.Sum64()
	d, t := uint64(databases), uint64(tables)
	return int(sum % d), int((sum / d) % t)
}

// TableName returns the name of order table t: t_order_<t>.
func TableName(t int) string { return "t_order_" + strconv.Itoa(t) }
