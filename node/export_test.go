package node

// SetAnnouncedFeatures replaces what nodes announce they apply, by node
// name, so that a test can run nodes of an "earlier version"; it returns a
// function that restores the default.
func SetAnnouncedFeatures(f func(name string) uint64) (restore func()) {
	old := announcedFeatures
	announcedFeatures = f
	return func() { announcedFeatures = old }
}
