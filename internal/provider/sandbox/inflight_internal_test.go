package sandbox

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestInflightEndsAtTheAnswer: a submission stops counting as in flight
// when its answer starts, not when its handler returns, so the merchant's
// next submission, sent as soon as the answer is read, is not counted
// against a request already answered.
func TestInflightEndsAtTheAnswer(t *testing.T) {
	for name, answer := range map[string]func(w http.ResponseWriter){
		"Write":       func(w http.ResponseWriter) { _, _ = w.Write([]byte("{}")) },
		"WriteHeader": func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) },
		"Hijack":      func(w http.ResponseWriter) { _, _, _ = w.(http.Hijacker).Hijack() },
	} {
		t.Run(name, func(t *testing.T) {
			f := newInflight()
			w, end := f.span(httptest.NewRecorder(), "m")
			if f.now["m"] != 1 {
				t.Fatalf("in flight before the answer: %d, want 1", f.now["m"])
			}
			answer(w)
			if f.now["m"] != 0 {
				t.Errorf("in flight once the answer started: %d, want 0", f.now["m"])
			}
			// The handler's deferred end, and the next submission.
			end()
			w2, end2 := f.span(httptest.NewRecorder(), "m")
			answer(w2)
			end2()
			if f.now["m"] != 0 || f.max["m"] != 1 {
				t.Errorf("after two sequential submissions: now %d, max %d; want 0, 1", f.now["m"], f.max["m"])
			}
		})
	}
	t.Run("ClientGoneWithoutAnswer", func(t *testing.T) {
		f := newInflight()
		_, end := f.span(httptest.NewRecorder(), "m")
		end()
		if f.now["m"] != 0 {
			t.Errorf("in flight after the handler gave up: %d", f.now["m"])
		}
	})
}
