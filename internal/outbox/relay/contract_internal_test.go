package relay

import (
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/api"
	"github.com/paycore/withdraw/internal/store"
)

// TestRelayHeadersAreTheContract: the headers the relay puts on an event
// are exactly those api/asyncapi.yaml declares for the events topic, with
// the values it states.
func TestRelayHeadersAreTheContract(t *testing.T) {
	r := &Relay{opts: Options{Source: SourceDefault}}
	m := r.message(&store.PendingEvent{EventID: "0198e0f4-1c2b-7c3d-8e4f-5a6b7c8d9e0f", EventKey: "k", EventType: "withdrawal.accepted",
		Payload: []byte(`{}`), CreatedAt: time.Date(2026, 11, 22, 2, 0, 0, 123456789, time.UTC)})
	got := map[string]string{}
	var names []string
	for _, h := range m.Headers {
		got[h.Key] = string(h.Value)
		names = append(names, h.Key)
	}

	var doc struct {
		Components struct {
			Messages map[string]struct {
				Headers struct {
					Required   []string
					Properties map[string]struct {
						Const string
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(api.AsyncAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	h := doc.Components.Messages["event"].Headers
	var declared []string
	for k, p := range h.Properties {
		declared = append(declared, k)
		if p.Const != "" && got[k] != p.Const {
			t.Errorf("header %s = %q, the contract says %q", k, got[k], p.Const)
		}
	}
	slices.Sort(names)
	slices.Sort(declared)
	req := slices.Sorted(slices.Values(h.Required))
	if !slices.Equal(names, declared) || !slices.Equal(names, req) {
		t.Errorf("relay headers %v, contract declares %v and requires %v", names, declared, req)
	}
	if got["ce_id"] != got["event_id"] || got["ce_type"] != "withdrawal.accepted" {
		t.Errorf("headers %v", got)
	}
}
