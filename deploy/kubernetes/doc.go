// Package kubernetes holds no code: it is the module that validates the
// Kubernetes manifests in manifests/ (manifests_test.go) against the
// official API types, so that k8s.io/api stays out of the node binary's
// module.
package kubernetes
