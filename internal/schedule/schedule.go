// Package schedule holds the providers' timing rules: when a submitted
// withdrawal is first worth querying, when a query that finds nothing
// becomes conclusive, how often to ask again. The dispatcher and the poller
// both read them from here, so one table answers "why did it wait?".
package schedule

import (
	"fmt"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Rules are the timing rules. The zero value is not useful; start from
// Production() or Accelerated().
type Rules struct {
	// WeChatQueryHour is the Beijing hour of the day after submission from
	// which WeChat withdraw queries are meaningful ("查询状态需要隔日早上 8
	// 点后进行"); a query finding nothing before then proves nothing.
	WeChatQueryHour int
	// AllinpayQueryMinute is the minute of the hour after submission from
	// which Allinpay results can be queried ("下一个小时的30分以后").
	AllinpayQueryMinute int
	// Fixed, when positive, replaces both calendar rules by a fixed delay
	// after submission: for the sandbox, tests and the devstack.
	Fixed time.Duration

	// PollMin and PollMax bound the backoff between queries of a
	// withdrawal whose status did not change.
	PollMin, PollMax time.Duration
	// CancelPollMin is the first query interval of cancel-withdraw
	// applications, which are reviewed by people and polled more slowly.
	CancelPollMin time.Duration
	// InitResubmitAfter is how long after seeing WeChat INIT the identical
	// request is re-sent ("原单重入"), and InitAlertAfter when a withdrawal
	// still INIT is reported as stuck (the provider says up to 7 days).
	InitResubmitAfter, InitAlertAfter time.Duration
	// QueryWindow is how far back the provider answers queries (WeChat: 90
	// days); past it a withdrawal is reported and no longer queried.
	QueryWindow time.Duration
	// FollowSucceeded is how long a SUCCEEDED WeChat withdrawal is still
	// queried for a bank refund (退票).
	FollowSucceeded time.Duration
	// UnknownRetryMin and UnknownRetryMax bound the backoff of an UNKNOWN
	// withdrawal whose query was itself inconclusive (timeouts, 5xx).
	UnknownRetryMin, UnknownRetryMax time.Duration
}

// Production returns the rules of the provider documents.
func Production() Rules {
	return Rules{
		WeChatQueryHour:     8,
		AllinpayQueryMinute: 30,
		PollMin:             5 * time.Minute,
		PollMax:             2 * time.Hour,
		CancelPollMin:       30 * time.Minute,
		InitResubmitAfter:   time.Hour,
		InitAlertAfter:      7 * 24 * time.Hour,
		QueryWindow:         90 * 24 * time.Hour,
		FollowSucceeded:     30 * 24 * time.Hour,
		UnknownRetryMin:     30 * time.Second,
		UnknownRetryMax:     30 * time.Minute,
	}
}

// Accelerated returns rules with every delay shrunk to seconds, for the
// sandbox: a withdrawal reaches its final state within seconds.
func Accelerated() Rules {
	return Rules{
		Fixed:             time.Second,
		PollMin:           500 * time.Millisecond,
		PollMax:           2 * time.Second,
		CancelPollMin:     time.Second,
		InitResubmitAfter: time.Second,
		InitAlertAfter:    time.Minute,
		QueryWindow:       24 * time.Hour,
		FollowSucceeded:   10 * time.Second,
		UnknownRetryMin:   200 * time.Millisecond,
		UnknownRetryMax:   2 * time.Second,
	}
}

// ByName returns the rules named by the --schedule setting: "production" or
// "accelerated".
func ByName(name string) (Rules, error) {
	switch name {
	case "", "production":
		return Production(), nil
	case "accelerated":
		return Accelerated(), nil
	}
	return Rules{}, fmt.Errorf("schedule %q: want production or accelerated", name)
}

// QueryableAt is when the provider's answer to a query about a withdrawal
// first sent at sentAt is meaningful: before it, "order not found" proves
// nothing and must not lead to a re-submission.
func (r Rules) QueryableAt(ch withdrawal.Channel, sentAt time.Time) time.Time {
	if r.Fixed > 0 {
		return sentAt.Add(r.Fixed)
	}
	local := sentAt.In(withdrawal.Beijing)
	if ch == withdrawal.ChannelAllinpayShopoint {
		next := time.Date(local.Year(), local.Month(), local.Day(), local.Hour()+1, r.AllinpayQueryMinute, 0, 0, withdrawal.Beijing)
		return next
	}
	return time.Date(local.Year(), local.Month(), local.Day()+1, r.WeChatQueryHour, 0, 0, 0, withdrawal.Beijing)
}

// NextPoll is when to query again after the n-th query (n ≥ 1) that found
// no change: exponential from PollMin (CancelPollMin for cancel-withdraw)
// up to PollMax.
func (r Rules) NextPoll(ch withdrawal.Channel, now time.Time, n int) time.Time {
	base := r.PollMin
	if ch == withdrawal.ChannelWeChatCancel && r.CancelPollMin > base {
		base = r.CancelPollMin
	}
	return now.Add(backoff(base, r.PollMax, n))
}

// NextUnknownRetry is when to try again after an inconclusive step on a
// withdrawal that has been UNKNOWN (maybe sent) for `age`: a quarter of its
// age, within [UnknownRetryMin, UnknownRetryMax], so a fresh outage is
// retried quickly and an old one does not hammer the provider.
func (r Rules) NextUnknownRetry(now time.Time, age time.Duration) time.Time {
	d := age / 4
	if d < r.UnknownRetryMin {
		d = r.UnknownRetryMin
	}
	if d > r.UnknownRetryMax {
		d = r.UnknownRetryMax
	}
	return now.Add(d)
}

func backoff(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
