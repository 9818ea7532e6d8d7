package intake

import (
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
)

// TestOptions: zero fields take the documented defaults, impossible
// values are refused by New with an error naming the option.
func TestOptions(t *testing.T) {
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(nil, nil, nil, Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	o := in.opts
	if o.BatchSize != BatchSizeDefault || o.BatchWait != BatchWaitDefault || o.Pipeline != PipelineDefault ||
		o.DLQTopic != DLQTopicDefault || o.DLQMaxMessageBytes != DLQMaxMessageBytesDefault ||
		o.ShutdownGrace != ShutdownGraceDefault || o.CommitGiveUp != CommitGiveUpDefault {
		t.Errorf("defaults not applied: %+v", o)
	}
	for name, bad := range map[string]Options{
		"BatchSize":          {Keys: keys, BatchSize: -1},
		"BatchWait":          {Keys: keys, BatchWait: -time.Millisecond},
		"Pipeline":           {Keys: keys, Pipeline: -2},
		"ShutdownGrace":      {Keys: keys, ShutdownGrace: -time.Second},
		"CommitGiveUp":       {Keys: keys, CommitGiveUp: -time.Second},
		"DLQMaxMessageBytes": {Keys: keys, DLQMaxMessageBytes: 1000},
		"PII keyring":        {},
	} {
		if _, err := New(nil, nil, nil, bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: New = %v, want an error naming it", name, err)
		}
	}
}
