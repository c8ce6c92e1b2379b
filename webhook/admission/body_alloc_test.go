package admission

import (
	"bytes"
	"testing"
)

// TestReadBodyAllocations: once the pool holds a buffer large enough, reading a body and
// releasing it allocates nothing, for bodies of the sizes the API server sends (a few KiB to
// tens of KiB) whether or not the client announced a Content-Length.
func TestReadBodyAllocations(t *testing.T) {
	for _, tc := range []struct {
		name          string
		size          int
		contentLength bool
	}{
		{name: "4 KiB, Content-Length", size: 4 << 10, contentLength: true},
		{name: "4 KiB, chunked", size: 4 << 10},
		{name: "30 KiB, Content-Length", size: 30 << 10, contentLength: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("x"), tc.size)
			cl := int64(-1)
			if tc.contentLength {
				cl = int64(tc.size)
			}
			budget := NewBodyBudget(MaxBodyBytesInFlight)
			r := bytes.NewReader(nil)
			read := func() {
				r.Reset(payload)
				b, err := readBody(r, cl, MaxBodyBytes, budget)
				if err != nil || len(b.bytes()) != tc.size {
					t.Fatalf("read %d of %d bytes: %v", len(b.bytes()), tc.size, err)
				}
				b.release()
			}
			read() // fills the pool
			if n := testing.AllocsPerRun(100, read); n > 0 {
				t.Errorf("reading a %d-byte body with a warm pool: %v allocations, want 0", tc.size, n)
			}
		})
	}
}

// TestPooledBufferLargerThanBudgetLeft: a request is never refused because the pool handed
// it a buffer larger than the budget has left; it starts from an empty one instead.
func TestPooledBufferLargerThanBudgetLeft(t *testing.T) {
	budget := NewBodyBudget(32 << 10)
	budget.bodies.Put(&body{buf: make([]byte, 0, 64<<10)})
	payload := bytes.Repeat([]byte("x"), 1<<10)
	b, err := readBody(bytes.NewReader(payload), int64(len(payload)), MaxBodyBytes, budget)
	if err != nil || len(b.bytes()) != len(payload) {
		t.Fatalf("read %d of %d bytes: %v, want the whole body", len(b.bytes()), len(payload), err)
	}
	if b.charged > 32<<10 {
		t.Errorf("charged %d bytes, more than the budget", b.charged)
	}
	b.release()
}
