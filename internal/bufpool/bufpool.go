// Package bufpool lends bytes.Buffers for the admission path's encodings.
package bufpool

import (
	"bytes"
	"sync"
)

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Get lends an empty buffer.
func Get() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

// Put takes a buffer back. An outsized one is left to the collector rather
// than held.
func Put(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 {
		b.Reset()
		buffers.Put(b)
	}
}
