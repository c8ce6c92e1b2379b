package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Forwarder is a TCP forwarder on 127.0.0.1 that stands in for a Service in front of
// processes: each connection goes to the next of its backends in turn, and while it has none,
// connections are accepted and closed at once (counted by Refused), as a Service without
// ready endpoints does. It copies bytes only: TLS is between the client and the backend.
type Forwarder struct {
	ln      net.Listener
	refused atomic.Int64

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[string]int        // connections forwarded, by backend
	open     map[net.Conn]struct{} // both sides of every forwarded connection
	wg       sync.WaitGroup
}

// NewForwarder listens on a free loopback port until the test ends.
func NewForwarder(t testing.TB, backends ...string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{ln: ln, backends: backends, conns: map[string]int{}, open: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

// Addr is the forwarder's host:port.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// SetBackends replaces the backends (host:port) new connections go to; open connections stay.
func (f *Forwarder) SetBackends(backends ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backends, f.next = backends, 0
}

// Refused is how many connections were closed because there was no backend.
func (f *Forwarder) Refused() int64 { return f.refused.Load() }

// Connections is how many connections went to backend.
func (f *Forwarder) Connections(backend string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[backend]
}

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		f.mu.Lock()
		if len(f.backends) == 0 {
			f.mu.Unlock()
			f.refused.Add(1)
			_ = c.Close()
			continue
		}
		backend := f.backends[f.next%len(f.backends)]
		f.next++
		f.conns[backend]++
		f.open[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go f.forward(c, backend)
	}
}

// forward copies both ways between c and a new connection to backend until either side ends.
func (f *Forwarder) forward(c net.Conn, backend string) {
	defer f.wg.Done()
	defer f.forget(c)
	up, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.open[up] = struct{}{}
	f.mu.Unlock()
	defer f.forget(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (f *Forwarder) forget(c net.Conn) {
	_ = c.Close()
	f.mu.Lock()
	delete(f.open, c)
	f.mu.Unlock()
}

// close stops listening, cuts every forwarded connection and waits for the goroutines.
func (f *Forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.open {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
