package httpapi

import "strconv"

// parsePurchaseFast parses the purchase bodies shoppers actually send —
// {"quantity":1}, {"request_id":"r1","quantity":2}, {} — without
// reflection or allocation beyond the request ID. It accepts a strict
// subset of JSON: each known key at most once, an integer quantity (or
// null), a request ID string with no escapes and only ASCII. Anything else,
// valid or not, returns ok == false and goes to the general decoder, which
// gives the exact error; FuzzPurchaseBodyFast checks that the two agree on
// everything the fast path accepts.
func parsePurchaseFast(b []byte) (body purchaseBody, ok bool) {
	p := fastParser{b: b}
	p.ws()
	if !p.eat('{') {
		return body, false
	}
	p.ws()
	if p.eat('}') {
		return body, p.end()
	}
	var seenQty, seenReq bool
	for {
		p.ws()
		key, ok := p.plainString()
		if !ok {
			return body, false
		}
		p.ws()
		if !p.eat(':') {
			return body, false
		}
		p.ws()
		switch key {
		case "quantity":
			if seenQty {
				return body, false
			}
			seenQty = true
			if p.literal("null") {
				break
			}
			q, ok := p.int32()
			if !ok {
				return body, false
			}
			body.Quantity = &q
		case "request_id":
			if seenReq {
				return body, false
			}
			seenReq = true
			if p.literal("null") {
				break
			}
			s, ok := p.plainString()
			if !ok {
				return body, false
			}
			body.RequestID = s
		default:
			return body, false
		}
		p.ws()
		if p.eat('}') {
			return body, p.end()
		}
		if !p.eat(',') {
			return body, false
		}
	}
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// end reports whether only white space follows.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// plainString reads a string of printable ASCII without escapes.
func (p *fastParser) plainString() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", false
		}
		p.i++
	}
	return "", false
}

// int32 reads a JSON integer (no fraction, no exponent) that fits int32.
func (p *fastParser) int32() (int32, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 10 || (n > 1 && p.b[digits] == '0') {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(v), true
}
