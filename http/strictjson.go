package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// checkKeys walks the top-level object of data and refuses a key that is
// not exactly one of allowed, or that appears twice. Anything that is not
// a well-formed object is left to the decoder, which words the error.
func checkKeys(data []byte, allowed []string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var seen []string // few keys: a slice beats a map
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil
		}
		switch {
		case !slices.Contains(allowed, key):
			return invalid("unknown field %q (field names are case-sensitive: %s)", key, strings.Join(allowed, ", "))
		case slices.Contains(seen, key):
			return invalid("field %q appears more than once", key)
		}
		seen = append(seen, key)
		if err := skipValue(dec); err != nil {
			return nil
		}
	}
	return nil
}

// skipValue reads one JSON value, however nested.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// keysOf caches the JSON field names of request body types.
var keysOf sync.Map // reflect.Type -> []string

// jsonKeys returns the JSON names of the fields of the struct v points to.
func jsonKeys(v any) []string {
	t := reflect.TypeOf(v).Elem()
	if k, ok := keysOf.Load(t); ok {
		return k.([]string)
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		keys = append(keys, name)
	}
	keysOf.Store(t, keys)
	return keys
}
