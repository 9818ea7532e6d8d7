package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// plan is a batch sorted by what happens to each message. Decoding and
// validation happen once, outside the transaction, so that a retried
// transaction only repeats the database work.
type plan struct {
	deadLetters []*deadLetter
	rejections  []rejected
	valid       []valid
}

type rejected struct {
	cmd       *withdrawal.Command // identity fields at least
	hash      string
	rejection *withdrawal.Rejection
}

type valid struct {
	cmd  *withdrawal.Command
	hash string
	// row and event are built before the transaction (JSON, sealing), so
	// that the transaction only does database work. Used if the key is new.
	row   store.Withdrawal
	event store.OutboxEvent
	err   error // building them failed; fails the store step
}

func (in *Intake) plan(batch []kafka.Message) plan {
	var p plan
	for _, m := range batch {
		cmd, err := withdrawal.Decode(m.Value)
		var undecodable *withdrawal.Undecodable
		var rejection *withdrawal.Rejection
		switch {
		case errors.As(err, &undecodable):
			p.deadLetters = append(p.deadLetters, in.deadLetter(m, undecodable.Reason))
			continue
		case errors.As(err, &rejection):
		case err != nil: // Decode returns only the two kinds; be safe anyway
			p.deadLetters = append(p.deadLetters, in.deadLetter(m, err.Error()))
			continue
		default:
			rejection = in.validate(cmd)
		}
		hash, herr := withdrawal.ParamsHash(cmd)
		if herr != nil {
			// Only a malformed command fails to hash, and those are rejected.
			hash = ""
		}
		if rejection != nil {
			p.rejections = append(p.rejections, rejected{cmd: cmd, hash: hash, rejection: rejection})
			continue
		}
		p.valid = append(p.valid, in.build(cmd, hash))
	}
	return p
}

// build prepares the row and accepted event of a valid command.
func (in *Intake) build(cmd *withdrawal.Command, hash string) valid {
	v := valid{cmd: cmd, hash: hash}
	now := in.opts.Now()
	v.row, v.err = store.NewWithdrawalRow(withdrawal.NewID(), cmd, hash, in.opts.Keys, now)
	if v.err == nil {
		v.event, v.err = outbox.Record(v.row.Event(withdrawal.NewID(), "", now), now)
	}
	return v
}

func (in *Intake) validate(cmd *withdrawal.Command) *withdrawal.Rejection {
	rules := withdrawal.DefaultRules
	if in.opts.Rules != nil {
		rules = in.opts.Rules(cmd.Channel, cmd.Account)
	}
	if r := withdrawal.ValidateWith(cmd, rules); r != nil {
		return r
	}
	if in.opts.AccountConfigured != nil && !in.opts.AccountConfigured(cmd.Channel, cmd.Account) {
		return &withdrawal.Rejection{Code: withdrawal.ReasonAccountNotConfigured, Field: "account",
			Reason: "no provider account of that name is configured for the channel"}
	}
	return nil
}

// store writes the batch in one transaction and returns how many commands
// were accepted, duplicates and conflicts.
func (in *Intake) store(ctx context.Context, p plan) (map[string]int, error) {
	if len(p.valid) == 0 && len(p.rejections) == 0 {
		return nil, nil
	}
	started := time.Now()
	now := in.opts.Now()
	counts := map[string]int{}
	var stored []store.Withdrawal
	err := in.db.InTx(ctx, func(tx *store.Tx) error {
		clear(counts)
		stored = nil
		nos := make([]string, 0, len(p.valid))
		for _, v := range p.valid {
			nos = append(nos, v.cmd.OutRequestNo)
		}
		found, err := store.FindKeyHashes(ctx, tx, nos)
		if err != nil {
			return err
		}
		known := make(map[withdrawal.Key]store.KeyHash, len(found)+len(p.valid))
		for _, f := range found {
			known[withdrawal.Key{Channel: withdrawal.Channel(f.Channel), Account: f.Account, OutRequestNo: f.OutRequestNo}] = f
		}

		rows := make([]store.Withdrawal, 0, len(p.valid))
		events := make([]store.OutboxEvent, 0, len(p.valid)+len(p.rejections))
		addEvent := func(ev withdrawal.Event) error {
			rec, err := outbox.Record(ev, now)
			if err != nil {
				return err
			}
			events = append(events, rec)
			return nil
		}
		for _, v := range p.valid {
			key := v.cmd.Key()
			if prior, ok := known[key]; ok {
				if prior.ParamsHash == v.hash {
					counts[ResultDuplicate]++
					continue
				}
				counts[ResultConflict]++
				r := &withdrawal.Rejection{Code: withdrawal.ReasonRequestConflict, Field: "out_request_no",
					Reason: fmt.Sprintf("withdrawal %s already exists with other parameters", prior.ID)}
				if err := addEvent(rejectionEvent(v.cmd, v.hash, r, now)); err != nil {
					return err
				}
				continue
			}
			if v.err != nil {
				return v.err
			}
			rows = append(rows, v.row)
			known[key] = store.KeyHash{ID: v.row.ID, ParamsHash: v.hash}
			counts[ResultAccepted]++
			events = append(events, v.event)
		}
		for _, r := range p.rejections {
			if err := addEvent(rejectionEvent(r.cmd, r.hash, r.rejection, now)); err != nil {
				return err
			}
		}
		if err := store.InsertWithdrawals(ctx, tx, rows); err != nil {
			return err
		}
		stored = rows
		return store.InsertOutbox(ctx, tx, events)
	})
	in.opts.Metrics.txDuration.Observe(time.Since(started).Seconds())
	if err != nil {
		return nil, fmt.Errorf("store batch of %d commands: %w", len(p.valid)+len(p.rejections), err)
	}
	if in.log.Enabled(ctx, slog.LevelDebug) {
		for _, w := range stored {
			in.log.Debug("withdrawal accepted", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
				"channel", w.Channel, "account", w.Account, "amount", w.Amount)
		}
	}
	return counts, nil
}

// maxReasonBytes bounds the reason text of a rejection event. The text may
// quote what the command sent (an unknown channel or field name, an account
// name), which can be nearly all of a MaxCommandBytes command, and quoting
// and JSON escaping can make each byte of it six or more: the quote would
// double the event. The identity fields (channel, account, out_request_no)
// are echoed in full for correlation; with the reason bounded, an event is
// at most about 6 × MaxCommandBytes (TestRejectionEventSize).
const maxReasonBytes = 512

// rejectionEvent is the withdrawal.rejected event of a command. It has no
// withdrawal id (no withdrawal was created) and version 0; its event id is
// derived from the command so that a redelivery produces the same event.
func rejectionEvent(cmd *withdrawal.Command, hash string, r *withdrawal.Rejection, now time.Time) withdrawal.Event {
	reason := r.Reason
	if r.Field != "" {
		reason = r.Field + ": " + reason
	}
	if len(reason) > maxReasonBytes {
		reason = cutUTF8(reason, maxReasonBytes-len("…")) + "…"
	}
	return withdrawal.Event{
		EventID:      withdrawal.RejectionEventID(cmd.Key(), hash, r.Code),
		Type:         withdrawal.EventRejected,
		Channel:      cmd.Channel,
		Account:      cmd.Account,
		OutRequestNo: cmd.OutRequestNo,
		State:        withdrawal.StateRejected,
		Amount:       cmd.TotalAmount(),
		ReasonCode:   string(r.Code),
		Reason:       reason,
		OccurredAt:   withdrawal.FormatEventTime(now),
	}
}

// merchantKeys lists the distinct merchants of the plan's valid commands.
func (p plan) merchantKeys() []string {
	seen := make(map[string]bool)
	var out []string
	for _, v := range p.valid {
		if k := v.row.MerchantKey; k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
