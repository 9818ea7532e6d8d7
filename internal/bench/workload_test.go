package bench

import (
	"errors"
	"testing"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestWorkloadClassifies checks that the generated workload is what Expect
// says, by the same decoding and validation the intake applies.
func TestWorkloadClassifies(t *testing.T) {
	msgs, want := Workload("t1", 5000)
	var got Expect
	seen := map[withdrawal.Key]bool{}
	channels := map[withdrawal.Channel]int{}
	for _, m := range msgs {
		got.Produced++
		cmd, err := withdrawal.Decode(m.Value)
		var undecodable *withdrawal.Undecodable
		if errors.As(err, &undecodable) {
			got.DeadLettered++
			continue
		}
		if err == nil {
			if r := withdrawal.Validate(cmd); r != nil {
				err = r
			}
		}
		if err != nil {
			got.Rejected++
			continue
		}
		if string(m.Key) != cmd.OutRequestNo {
			t.Fatalf("key %q, out_request_no %q", m.Key, cmd.OutRequestNo)
		}
		if seen[cmd.Key()] {
			got.Duplicates++
			continue
		}
		seen[cmd.Key()] = true
		channels[cmd.Channel]++
		got.Accepted++
	}
	if got != want {
		t.Fatalf("workload classifies as %+v, Expect says %+v", got, want)
	}
	if len(channels) != 4 {
		t.Fatalf("channels %v, want all four", channels)
	}
	t.Logf("%+v %v", got, channels)
}
