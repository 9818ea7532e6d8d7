package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what to inject at one endpoint. Rates are probabilities per
// request in [0,1]; they are drawn in the order: 429, 5xx, error codes,
// then (after the order is processed) timeout-after-commit and bad
// signature.
type Fault struct {
	// Latency is added before the request is processed (inside the
	// in-flight window the ledger measures).
	Latency time.Duration `json:"-"` // JSON: "latency": "50ms"
	// Errors maps a provider error code (WeChat: "SYSTEM_ERROR",
	// "NOT_ENOUGH", …; Allinpay: "3", …) to its rate. No order is created.
	Errors map[string]float64 `json:"errors,omitempty"`
	// Rate5xx answers 502 with an unsigned HTML page; no order is created.
	Rate5xx float64 `json:"rate_5xx,omitempty"`
	// Rate429 answers 429 FREQUENCY_LIMITED (signed); no order is created.
	Rate429 float64 `json:"rate_429,omitempty"`
	// TimeoutAfterCommit creates the order, then drops the connection
	// without an answer.
	TimeoutAfterCommit float64 `json:"timeout_after_commit,omitempty"`
	// BadSignature creates the order, then answers with a broken signature.
	BadSignature float64 `json:"bad_signature,omitempty"`
	// ForgedAnswer answers a WeChat request that succeeded with a correctly
	// signed body about another order: out_request_no removed, amount and
	// withdraw_id changed. A client must never let it move a state.
	ForgedAnswer float64 `json:"forged_answer,omitempty"`
}

// faults holds the per-endpoint faults and the seeded random source.
type faults struct {
	mu  sync.Mutex
	by  map[string]Fault
	rng *rand.Rand
	// injected counts the faults applied, by "endpoint fault" (e.g.
	// "ecommerce.submit 5xx"), so that a test run can report what it
	// survived rather than only what it configured.
	injected map[string]int
}

func newFaults(seed uint64, initial map[string]Fault) *faults {
	f := &faults{by: make(map[string]Fault), rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), injected: make(map[string]int)}
	for k, v := range initial {
		f.by[k] = v
	}
	return f
}

func (f *faults) set(endpoint string, v Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v.isZero() {
		delete(f.by, endpoint)
		return
	}
	f.by[endpoint] = v
}

func (f *faults) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.by = make(map[string]Fault)
}

func (f *faults) snapshot() map[string]Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]Fault, len(f.by))
	for k, v := range f.by {
		out[k] = v
	}
	return out
}

func (v Fault) isZero() bool {
	return v.Latency == 0 && len(v.Errors) == 0 && v.Rate5xx == 0 && v.Rate429 == 0 && v.TimeoutAfterCommit == 0 &&
		v.BadSignature == 0 && v.ForgedAnswer == 0
}

// decision is what to do with one request.
type decision struct {
	latency        time.Duration
	status429      bool
	status5xx      bool
	errorCode      string
	dropAfterWrite bool
	badSignature   bool
	forged         bool
}

// decide draws the faults of one request at an endpoint. An endpoint's own
// fault replaces the "*" fault.
func (f *faults) decide(endpoint string) decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.by[endpoint]
	if !ok {
		v, ok = f.by["*"]
	}
	if !ok {
		return decision{}
	}
	d := decision{latency: v.Latency}
	hit := func(p float64) bool { return p > 0 && f.rng.Float64() < p }
	switch {
	case hit(v.Rate429):
		d.status429 = true
	case hit(v.Rate5xx):
		d.status5xx = true
	default:
		codes := make([]string, 0, len(v.Errors))
		for c := range v.Errors {
			codes = append(codes, c)
		}
		sort.Strings(codes) // map order must not break determinism
		for _, c := range codes {
			if hit(v.Errors[c]) {
				d.errorCode = c
				break
			}
		}
	}
	if d.errorCode == "" && !d.status429 && !d.status5xx {
		d.dropAfterWrite = hit(v.TimeoutAfterCommit)
		d.badSignature = !d.dropAfterWrite && hit(v.BadSignature)
		d.forged = !d.dropAfterWrite && !d.badSignature && hit(v.ForgedAnswer)
	}
	// A forged answer is counted where it is applied (only to a success).
	for name, on := range map[string]bool{"429": d.status429, "5xx": d.status5xx, "timeout_after_commit": d.dropAfterWrite,
		"bad_signature": d.badSignature, d.errorCode: d.errorCode != ""} {
		if on {
			f.injected[endpoint+" "+name]++
		}
	}
	return d
}

// count records one applied fault that decide could not count itself.
func (f *faults) count(endpoint, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.injected[endpoint+" "+name]++
}

// injectedSnapshot copies the applied-fault counts.
func (f *faults) injectedSnapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.injected))
	for k, v := range f.injected {
		out[k] = v
	}
	return out
}

// ParseFaultFlag parses "endpoint:key=value,key=value" as given to
// --fault. Keys: latency (a duration), 5xx, 429, timeout_after_commit,
// bad_signature, forged_answer (rates), and any other key is an error code
// with its rate.
func ParseFaultFlag(s string) (string, Fault, error) {
	endpoint, spec, ok := strings.Cut(s, ":")
	if !ok || endpoint == "" {
		return "", Fault{}, fmt.Errorf("fault %q: want endpoint:key=value,…", s)
	}
	if endpoint != "*" && !knownEndpoint(endpoint) {
		return "", Fault{}, fmt.Errorf("fault %q: unknown endpoint (want * or one of %v)", s, Endpoints)
	}
	var v Fault
	for _, kv := range strings.Split(spec, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return "", Fault{}, fmt.Errorf("fault %q: %q is not key=value", s, kv)
		}
		if k == "latency" {
			d, err := time.ParseDuration(val)
			if err != nil {
				return "", Fault{}, fmt.Errorf("fault %q: latency: %w", s, err)
			}
			v.Latency = d
			continue
		}
		p, err := strconv.ParseFloat(val, 64)
		if err != nil || p < 0 || p > 1 {
			return "", Fault{}, fmt.Errorf("fault %q: %s must be a rate in [0,1]", s, k)
		}
		switch k {
		case "5xx":
			v.Rate5xx = p
		case "429":
			v.Rate429 = p
		case "timeout_after_commit":
			v.TimeoutAfterCommit = p
		case "bad_signature":
			v.BadSignature = p
		case "forged_answer":
			v.ForgedAnswer = p
		default:
			if v.Errors == nil {
				v.Errors = make(map[string]float64)
			}
			v.Errors[k] = p
		}
	}
	return endpoint, v, nil
}

func knownEndpoint(e string) bool {
	for _, x := range Endpoints {
		if x == e {
			return true
		}
	}
	return false
}

// faultJSON is Fault with the latency as a duration string ("50ms").
type faultJSON struct {
	Latency            string             `json:"latency,omitempty"`
	Errors             map[string]float64 `json:"errors,omitempty"`
	Rate5xx            float64            `json:"rate_5xx,omitempty"`
	Rate429            float64            `json:"rate_429,omitempty"`
	TimeoutAfterCommit float64            `json:"timeout_after_commit,omitempty"`
	BadSignature       float64            `json:"bad_signature,omitempty"`
	ForgedAnswer       float64            `json:"forged_answer,omitempty"`
}

// MarshalJSON writes the latency as a duration string.
func (v Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Errors: v.Errors, Rate5xx: v.Rate5xx, Rate429: v.Rate429, TimeoutAfterCommit: v.TimeoutAfterCommit,
		BadSignature: v.BadSignature, ForgedAnswer: v.ForgedAnswer}
	if v.Latency != 0 {
		j.Latency = v.Latency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the latency as a duration string ("50ms").
func (v *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*v = Fault{Errors: j.Errors, Rate5xx: j.Rate5xx, Rate429: j.Rate429, TimeoutAfterCommit: j.TimeoutAfterCommit,
		BadSignature: j.BadSignature, ForgedAnswer: j.ForgedAnswer}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		v.Latency = d
	}
	return nil
}
