package actors

// SetItemsMaxForTest lowers the items-per-shard bound, so that a test can
// reach it without creating sale.ItemsPerShardMax items.
func (e *Engine) SetItemsMaxForTest(n int) { e.itemsMax = n }
