//go:build tools

// Package tools pins the versions of the developer tools that `make check`
// runs, apart from the main module's dependencies.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
