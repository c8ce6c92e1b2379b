package admission

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Request-body bounds. The webhook's port is reachable by every pod of the cluster without
// authentication, so a body costs memory only as its bytes arrive, never because a client
// announced a Content-Length, and all bodies together stay under one budget.
const (
	// MaxBodyBytes bounds one request body: an AdmissionReview holds at most two objects of
	// etcd's 1.5 MiB limit each (stored as JSON at up to twice that), plus the envelope.
	MaxBodyBytes = 7 << 20
	// MaxBodyBytesInFlight bounds the buffers of all request bodies being read or decoded at
	// once, across both webhooks: four bodies of the largest size, or more than a thousand
	// ordinary pod reviews (10-30 KiB). Past it a request is answered 429 at once, before
	// anything is allocated for it; the API server's answers never come near it (it sends a
	// few requests at a time, each of a few KiB), an attacker's pile of slow bodies does.
	// With the chart's 256 Mi memory limit this leaves room for the informer cache.
	MaxBodyBytesInFlight = 32 << 20
	// firstBodyChunk is the first buffer a body gets when the pool has none: most pod reviews
	// fit in two or three doublings of it.
	firstBodyChunk = 8 << 10
	// maxPooledBody keeps an occasional huge request from pinning its buffer in the pool.
	maxPooledBody = 256 << 10
	// retryAfterSeconds is the Retry-After of a 429: the budget frees as soon as the bodies
	// being read are decoded, within milliseconds unless clients stall, and ReadTimeout of
	// the HTTP server ends stalled ones.
	retryAfterSeconds = "1"
)

// BodyBudget caps the bytes of request-body buffers held by all requests at once. Every
// buffer is charged before it is allocated (or taken from the pool) and released once its
// review is decoded; a request that does not fit is refused, never waited for.
//
// A weighted semaphore (golang.org/x/sync) rather than a hand-written counter: TryAcquire
// and Release are exactly "charge or refuse" and "give back".
//
// Each budget recycles its own bodies, buffers included: decoding copies what it keeps, so a
// body is garbage as soon as its review is decoded, and with a warm pool reading a body
// allocates nothing. The pool belongs to the budget because its buffers are charged to it.
type BodyBudget struct {
	sem    *semaphore.Weighted
	size   int64
	bodies sync.Pool
}

// NewBodyBudget returns a budget of size bytes.
func NewBodyBudget(size int64) *BodyBudget {
	return &BodyBudget{sem: semaphore.NewWeighted(size), size: size, bodies: sync.Pool{New: func() any { return new(body) }}}
}

// sharedBodies is the budget of every Server of this process (both webhooks), unless a test
// gives one its own.
var sharedBodies = NewBodyBudget(MaxBodyBytesInFlight)

var (
	errBodyTooLarge   = fmt.Errorf("request body exceeds %d bytes", MaxBodyBytes)
	errBodiesInFlight = errors.New("too many request bytes in flight; retry later")
)

// body is one request's buffer and what it has been charged.
type body struct {
	buf     []byte
	budget  *BodyBudget
	charged int64
	more    [512]byte // where a full buffer learns whether more bytes are coming
}

// charge takes n bytes from the budget, or fails without waiting.
func (b *body) charge(n int64) error {
	if !b.budget.sem.TryAcquire(n) {
		return errBodiesInFlight
	}
	b.charged += n
	return nil
}

// readBody reads r (at most limit bytes; contentLength is the client's claim, -1 when
// unknown) into a pooled buffer. The buffer grows by doubling, and only once it is full and
// more bytes have arrived, so a client that announces 7 MB and sends one byte costs one
// small buffer. Every buffer is charged to budget before it is allocated, the old one given
// back once copied: the budget bounds the live body buffers (the garbage the doublings
// leave is the collector's, at most as much again). Call release when done with the bytes.
func readBody(r io.Reader, contentLength, limit int64, budget *BodyBudget) (*body, error) {
	b := budget.bodies.Get().(*body)
	b.budget, b.charged = budget, 0
	buf := b.buf[:0]
	defer func() { b.buf = buf }()
	if err := b.charge(int64(cap(buf))); err != nil {
		// The pooled buffer is larger than what the budget has left: the request starts from
		// an empty one rather than being refused for the pool's luck.
		buf = nil
	}
	more := &b.more
	for {
		var n int
		var err error
		if len(buf) < cap(buf) {
			n, err = r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
		} else if n, err = r.Read(more[:]); n > 0 {
			if buf, err = b.grow(buf, int64(n), contentLength, limit); err != nil {
				return b, err
			}
			buf = append(buf, more[:n]...)
		}
		if int64(len(buf)) > limit {
			return b, errBodyTooLarge
		}
		switch {
		case errors.Is(err, io.EOF):
			return b, nil
		case err != nil:
			return b, fmt.Errorf("read request body: %w", err)
		}
	}
}

// grow returns buf with room for at least n more bytes: doubled, but no larger than an
// honest Content-Length or the limit need, and charged to the budget first.
func (b *body) grow(buf []byte, n, contentLength, limit int64) ([]byte, error) {
	have := int64(cap(buf))
	if int64(len(buf))+n > limit {
		return buf, errBodyTooLarge
	}
	next := max(2*have, firstBodyChunk)
	if contentLength >= 0 {
		next = min(next, contentLength) // saves doublings; a lying length only costs one more
	}
	next = max(min(next, limit), int64(len(buf))+n)
	if err := b.charge(next); err != nil {
		return buf, err
	}
	grown := make([]byte, len(buf), next)
	copy(grown, buf)
	b.budget.sem.Release(have)
	b.charged -= have
	return grown, nil
}

// bytes returns what was read.
func (b *body) bytes() []byte { return b.buf }

// release gives the charge back and the body to the pool, its buffer only if it is not too
// large to keep. b must not be used afterwards.
func (b *body) release() {
	if b.charged > 0 {
		b.budget.sem.Release(b.charged)
		b.charged = 0
	}
	budget := b.budget
	b.budget = nil
	if cap(b.buf) > maxPooledBody {
		b.buf = nil
	}
	b.buf = b.buf[:0]
	budget.bodies.Put(b)
}

// refuseBody answers a request whose body was not read: 413 for a body over MaxBodyBytes,
// 429 with Retry-After when the budget is spent. The connection is closed after the answer
// so that the rest of an unread body is never read.
func refuseBody(w http.ResponseWriter, err error) int {
	w.Header().Set("Connection", "close")
	if errors.Is(err, errBodiesInFlight) {
		w.Header().Set("Retry-After", retryAfterSeconds)
		return http.StatusTooManyRequests
	}
	return http.StatusRequestEntityTooLarge
}
