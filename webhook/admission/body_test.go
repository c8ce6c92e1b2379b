package admission_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
)

// slowBody is a request body that has sent what was written to it and waits for more.
type slowBody struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func newSlowBody() *slowBody {
	r, w := io.Pipe()
	return &slowBody{r: r, w: w}
}

// send returns once the handler has read p.
func (b *slowBody) send(t *testing.T, p string) {
	t.Helper()
	if _, err := b.w.Write([]byte(p)); err != nil {
		t.Fatal(err)
	}
}

// serveSlow starts s on a request announcing contentLength bytes whose body is b; the
// returned channel gets the answer once the body ends.
func serveSlow(s http.Handler, contentLength int64, b *slowBody) <-chan *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", b.r)
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		done <- rec
	}()
	return done
}

// TestBodyGrowsOnlyAsBytesArrive: a request that announces the largest body and sends one
// byte must not make the webhook allocate the announced size.
func TestBodyGrowsOnlyAsBytesArrive(t *testing.T) {
	s := admission.NewServer("pod", admission.HandlerFunc[raw](allow), logr.Discard(), admission.NewMetrics(nil))
	const requests = 8
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var pending []*slowBody
	var answers []<-chan *httptest.ResponseRecorder
	for range requests {
		b := newSlowBody()
		answers = append(answers, serveSlow(s, admission.MaxBodyBytes-1, b))
		b.send(t, "{") // returns once the handler has read it
		pending = append(pending, b)
	}
	runtime.ReadMemStats(&after)
	for i, b := range pending {
		b.w.CloseWithError(io.ErrUnexpectedEOF)
		if rec := <-answers[i]; rec.Code != http.StatusBadRequest {
			t.Errorf("cut-off body: HTTP %d, want 400", rec.Code)
		}
	}
	// Each pending request may hold a first buffer of a few KiB; the announced size would be
	// 8 x 7 MiB.
	const allowed = 1 << 20
	if grew := after.TotalAlloc - before.TotalAlloc; grew > allowed {
		t.Errorf("%d requests announcing %d bytes and sending one allocated %d bytes, want at most %d", requests, admission.MaxBodyBytes-1, grew, allowed)
	}
}

// TestBodyBudget: past the shared budget a request is refused at once with 429 and
// Retry-After, and the budget is whole again when the requests holding it end.
func TestBodyBudget(t *testing.T) {
	// The arithmetic of the budget: big (below) is ~49 KiB. Read from an empty buffer it
	// peaks at 32 + 49 KiB during its last copy; from a pooled buffer it holds 49 KiB. The
	// slow request below holds 64 KiB from an empty buffer, or 49 KiB from the pooled one.
	// Which request gets the pooled buffer is the pool's choice (per P), so the budget is
	// the one size where big fits alone from either start and never beside the slow request,
	// whichever of them got the pooled buffer: 97 KiB.
	const budget = 97 << 10
	m := admission.NewMetrics(nil)
	b := admission.NewBodyBudget(budget)
	s := admission.NewServer("pod", admission.HandlerFunc[raw](allow), logr.Discard(), m).WithBodyBudget(b)
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	// A valid review of 48 KiB: its buffer grows to 32 KiB, then to its length (80 KiB held
	// during the copy).
	big := strings.Replace(validReview, `"userInfo":{}`, `"userInfo":{"username":"`+strings.Repeat("a", 48<<10)+`"}`, 1)

	t.Run("control: a body within the budget is answered", func(t *testing.T) {
		if rec := post(big); rec.Code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	})
	t.Run("a body past what slow requests left is refused with 429", func(t *testing.T) {
		slow := newSlowBody()
		answer := serveSlow(s, -1, slow)
		// 40 KiB of a body of unknown length: a 64 KiB buffer, or the pooled 49 KiB one.
		slow.send(t, strings.Repeat(" ", 40<<10))
		rec := post(big)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || rec.Header().Get("Connection") != "close" {
			t.Errorf("HTTP %d (Retry-After %q, Connection %q), want 429 with Retry-After, closing", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Connection"))
		}
		if got := testutil.ToFloat64(m.Requests.WithLabelValues("pod", admission.ResultOverloaded)); got != 1 {
			t.Errorf("overloaded metric = %v, want 1", got)
		}
		_ = slow.w.Close()
		<-answer
		if rec := post(big); rec.Code != http.StatusOK {
			t.Errorf("after the slow request ended: HTTP %d, want 200 (budget not given back)", rec.Code)
		}
	})
	t.Run("an announced length over the limit is refused unread", func(t *testing.T) {
		slow := newSlowBody() // nothing is ever written: a read would block the test
		rec := <-serveSlow(s, admission.MaxBodyBytes+1, slow)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("HTTP %d, want 413", rec.Code)
		}
	})
}
