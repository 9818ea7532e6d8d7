package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/withdrawal"
)

func (c *cli) events(args []string) error {
	fs := c.flags("events", "[flags] [--withdrawal-id ID] [--out-request-no N]",
		`Prints the events topic as one readable line per event (or the JSON values with --json),
optionally only those of one withdrawal. Reads every partition without a consumer group (nothing is
committed). Follows new events until Ctrl-C, --max events or --timeout.`)
	brokerList := c.setting(fs, "kafka-brokers")
	topic := c.setting(fs, "events-topic")
	id := fs.String("withdrawal-id", "", "only events of this withdrawal")
	no := fs.String("out-request-no", "", "only events with this out_request_no (rejections have no withdrawal id)")
	from := fs.String("from", "end", "where to start: beginning or end (new events only)")
	max := fs.Int("max", 0, "stop after this many matching events (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (0: follow until Ctrl-C)")
	asJSON := fs.Bool("json", false, "print each event's JSON value instead of a line")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("events: unexpected arguments %v", pos)
	}
	if *from != "beginning" && *from != "end" {
		return fmt.Errorf("events: --from %q: want beginning or end", *from)
	}
	_, client, done, err := connect(*brokerList)
	if err != nil {
		return err
	}
	defer done()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	ps, bnd, err := topicBounds(ctx, client, *topic)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		printed int
		wg      sync.WaitGroup
		errs    = make([]error, len(ps))
	)
	emit := func(r kafkautil.Record) {
		var ev withdrawal.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			mu.Lock()
			fmt.Fprintf(c.stdout, "%d/%d  (not an event: %v)\n", r.Partition, r.Offset, err)
			mu.Unlock()
			return
		}
		if (*id != "" && ev.WithdrawalID != *id) || (*no != "" && ev.OutRequestNo != *no) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if *max > 0 && printed >= *max {
			return
		}
		if *asJSON {
			fmt.Fprintf(c.stdout, "%s\n", r.Value)
		} else {
			fmt.Fprintln(c.stdout, eventLine(r, &ev))
		}
		printed++
		if *max > 0 && printed >= *max {
			cancel()
		}
	}
	for i, p := range ps {
		offset := bnd[p][1]
		if *from == "beginning" {
			offset = bnd[p][0]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				recs, err := kafkautil.Fetch(ctx, client, *topic, p, offset, 500*time.Millisecond)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs[i] = err
					cancel()
					return
				}
				for _, r := range recs {
					emit(r)
					offset = r.Offset + 1
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

// eventLine renders one event on one line.
func eventLine(r kafkautil.Record, ev *withdrawal.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-22s", ev.OccurredAt, ev.Type)
	if ev.WithdrawalID != "" {
		fmt.Fprintf(&b, " v%d %s", ev.Version, ev.WithdrawalID)
	}
	fmt.Fprintf(&b, "  %s/%s/%s", ev.Channel, ev.Account, ev.OutRequestNo)
	if ev.PreviousState != "" {
		fmt.Fprintf(&b, "  %s→%s", ev.PreviousState, ev.State)
	} else if ev.State != "" {
		fmt.Fprintf(&b, "  %s", ev.State)
	}
	fmt.Fprintf(&b, "  amount=%d", ev.Amount)
	if ev.ProviderStatus != "" {
		fmt.Fprintf(&b, " provider=%s", ev.ProviderStatus)
	}
	if ev.ProviderRef != "" {
		fmt.Fprintf(&b, " ref=%s", ev.ProviderRef)
	}
	if ev.ReasonCode != "" {
		fmt.Fprintf(&b, " reason_code=%s", ev.ReasonCode)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", ev.Reason)
	}
	fmt.Fprintf(&b, "  [%d/%d]", r.Partition, r.Offset)
	return b.String()
}
