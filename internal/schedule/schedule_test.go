package schedule

import (
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

func TestQueryableAt(t *testing.T) {
	r := Production()
	bj := withdrawal.Beijing
	cases := []struct {
		ch   withdrawal.Channel
		sent time.Time
		want time.Time
	}{
		// WeChat: 08:00 Beijing the next day, whatever the hour of sending.
		{withdrawal.ChannelWeChatPlatform, time.Date(2026, 11, 22, 10, 0, 0, 0, bj), time.Date(2026, 11, 23, 8, 0, 0, 0, bj)},
		{withdrawal.ChannelWeChatEcommerce, time.Date(2026, 11, 22, 0, 5, 0, 0, bj), time.Date(2026, 11, 23, 8, 0, 0, 0, bj)},
		{withdrawal.ChannelWeChatCancel, time.Date(2026, 12, 31, 23, 59, 0, 0, bj), time.Date(2027, 1, 1, 8, 0, 0, 0, bj)},
		// The same instant given in UTC: 2026-11-22 23:30 UTC is 07:30 on the 23rd in Beijing.
		{withdrawal.ChannelWeChatPlatform, time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC), time.Date(2026, 11, 24, 8, 0, 0, 0, bj)},
		// Allinpay: minute 30 of the next hour (10:55 → 11:30, the document's example).
		{withdrawal.ChannelAllinpayShopoint, time.Date(2026, 11, 22, 10, 55, 0, 0, bj), time.Date(2026, 11, 22, 11, 30, 0, 0, bj)},
		{withdrawal.ChannelAllinpayShopoint, time.Date(2026, 11, 22, 23, 10, 0, 0, bj), time.Date(2026, 11, 23, 0, 30, 0, 0, bj)},
	}
	for _, c := range cases {
		if got := r.QueryableAt(c.ch, c.sent); !got.Equal(c.want) {
			t.Errorf("%s sent %s: queryable %s, want %s", c.ch, c.sent, got, c.want)
		}
	}
	if got := Accelerated().QueryableAt(withdrawal.ChannelWeChatPlatform, cases[0].sent); got != cases[0].sent.Add(time.Second) {
		t.Errorf("accelerated: %s", got)
	}
}

func TestBackoff(t *testing.T) {
	r := Production()
	now := time.Unix(0, 0)
	if d := r.NextPoll(withdrawal.ChannelWeChatPlatform, now, 1).Sub(now); d != 5*time.Minute {
		t.Errorf("first poll after %s", d)
	}
	if d := r.NextPoll(withdrawal.ChannelWeChatPlatform, now, 3).Sub(now); d != 20*time.Minute {
		t.Errorf("third poll after %s", d)
	}
	if d := r.NextPoll(withdrawal.ChannelWeChatPlatform, now, 50).Sub(now); d != 2*time.Hour {
		t.Errorf("capped poll after %s", d)
	}
	if d := r.NextPoll(withdrawal.ChannelWeChatCancel, now, 1).Sub(now); d != 30*time.Minute {
		t.Errorf("cancel poll after %s", d)
	}
}
