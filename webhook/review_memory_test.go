package webhook

import (
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/guardchain/guardchain/podreview"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A client that claims a large body and sends one byte, on many
// connections, must not make the handler allocate what it claims: the
// webhook port takes no client authentication.
func TestReviewMemoryFollowsBytesReceivedNotClaimed(t *testing.T) {
	srv := httptest.NewServer(&Handler{Config: Default(), Log: logr.Discard()})
	defer srv.Close()
	before := heapInUse()
	const conns = 40
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", MutatePath, podreview.MaxBytes-1)
	}
	// Let every handler reach its read of the body.
	time.Sleep(500 * time.Millisecond)
	grown := int64(heapInUse()) - int64(before)
	// Claimed: 40 x 7 MiB = 280 MiB. Allowed: the pre-sized 64 KiB each and slack.
	if grown > 32<<20 {
		t.Errorf("heap grew %d MiB for %d connections that claimed %d MiB each and sent 1 byte", grown>>20, conns, podreview.MaxBytes>>20)
	}
}
