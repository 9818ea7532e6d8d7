package withdrawapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/contracttest"
	"github.com/paycore/withdraw/internal/withdrawal"
	"github.com/paycore/withdraw/withdrawapi"
)

func commands() []withdrawapi.Command {
	return []withdrawapi.Command{
		&withdrawapi.WeChatEcommerce{OutRequestNo: "E1", Amount: 100, SubMchID: "1900000109", Remark: "交易提现 <&>"},
		&withdrawapi.WeChatPlatform{Account: "acct-2", OutRequestNo: "P1", Amount: 1, AccountType: "FEES", BankMemo: "xx平台提现"},
		&withdrawapi.WeChatCancel{OutRequestNo: "C1", Amount: 101, SubMchID: "1900000109", OutAccountType: "BASIC_ACCOUNT",
			PayeeType: "INDIVIDUAL", PayeeInfo: withdrawapi.PayeeInfo{AccountType: "ACCOUNT_TYPE_PRIVATE", AccountBank: "工商银行",
				AccountName: "张三", AccountNumber: "6222020200112233445", IdentityDocType: "IDENTIFICATION_TYPE_IDCARD",
				IdentityName: "张三", IdentityNo: "110101199003074477"},
			ProofMediaList: json.RawMessage(`{"proof_payee_media":[{"proof_media":"m","proof_media_type":"T"}]}`)},
		&withdrawapi.AllinpayShopoint{OutRequestNo: "A-1", Details: []withdrawapi.AllinpayDetail{
			{AccountUserID: 100, Amount: 100, Summary: "提现"}, {ExternalCode: "abc", Amount: 1}, {IsPlatform: true, Amount: 2}}},
	}
}

// TestMarshalIsWhatTheIntakeReads: Marshal's bytes decode, with the
// intake's strict decoder, to the command as built, validate, conform to
// the command schema, and Key is out_request_no.
func TestMarshalIsWhatTheIntakeReads(t *testing.T) {
	for _, c := range commands() {
		value, err := c.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", c.Channel(), err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", c.Channel(), err)
		}
		got, err := withdrawal.Decode(value)
		if err != nil {
			t.Fatalf("%s: %v", c.Channel(), err)
		}
		if rej := withdrawal.Validate(got); rej != nil {
			t.Errorf("%s: %v", c.Channel(), rej)
		}
		if string(got.Channel) != string(c.Channel()) || got.OutRequestNo != string(c.Key()) {
			t.Errorf("%s: decoded %s/%s, key %s", c.Channel(), got.Channel, got.OutRequestNo, c.Key())
		}
		again, _ := json.Marshal(got)
		if string(again) != string(value) {
			t.Errorf("%s: decoded command re-encodes differently:\n%s\n%s", c.Channel(), value, again)
		}
		if err := contracttest.Validate(t, "command", value); err != nil {
			t.Errorf("%s: schema: %v", c.Channel(), err)
		}
	}
}

// TestValidateIsTheIntakes: Validate refuses what the intake refuses, with
// the same code and field, including what only the decoder sees.
func TestValidateIsTheIntakes(t *testing.T) {
	for _, tc := range []struct {
		cmd   withdrawapi.Command
		code  withdrawapi.ReasonCode
		field string
	}{
		{&withdrawapi.WeChatEcommerce{OutRequestNo: "E1", Amount: 100}, withdrawapi.ReasonFieldRequired, "sub_mchid"},
		{&withdrawapi.WeChatEcommerce{OutRequestNo: "E-1", Amount: 100, SubMchID: "1"}, withdrawapi.ReasonInvalidOutRequestNo, "out_request_no"},
		{&withdrawapi.WeChatEcommerce{OutRequestNo: "E1", Amount: 100, SubMchID: "1", Remark: "a\x00"}, withdrawapi.ReasonInvalidFieldType, "remark"},
		{&withdrawapi.WeChatPlatform{OutRequestNo: "P1", Amount: 10_000_000_001, AccountType: "BASIC"}, withdrawapi.ReasonAmountOverLimit, "amount"},
		{&withdrawapi.WeChatPlatform{Account: "a b", OutRequestNo: "P1", Amount: 1, AccountType: "BASIC"}, withdrawapi.ReasonInvalidAccount, "account"},
		{&withdrawapi.WeChatCancel{OutRequestNo: "C1", Amount: 1, SubMchID: "1", OutAccountType: "BASIC_ACCOUNT", PayeeType: "CONTRIBUTION_MERCHANT", PayeeMchID: "2",
			PayeeInfo: withdrawapi.PayeeInfo{AccountType: "ACCOUNT_TYPE_CORPORATE", AccountBank: "b", AccountName: "n", AccountNumber: "1"}}, withdrawapi.ReasonPayeeMchIDMismatch, "payee_mchid"},
		{&withdrawapi.WeChatCancel{OutRequestNo: "C1", Amount: 1, SubMchID: "1", OutAccountType: "BASIC_ACCOUNT", PayeeType: "OTHER_MERCHANT", PayeeMchID: "2",
			PayeeInfo:      withdrawapi.PayeeInfo{AccountType: "ACCOUNT_TYPE_CORPORATE", AccountBank: "b", AccountName: "n", AccountNumber: "1"},
			ProofMediaList: json.RawMessage(`{"a":[[[1]]]}`)}, withdrawapi.ReasonInvalidFieldType, "proof_media_list"},
		{&withdrawapi.AllinpayShopoint{OutRequestNo: "A1", Amount: 5, Details: []withdrawapi.AllinpayDetail{{IsPlatform: true, Amount: 4}}}, withdrawapi.ReasonAmountMismatch, "amount"},
		{&withdrawapi.AllinpayShopoint{OutRequestNo: "A1", Details: []withdrawapi.AllinpayDetail{{IsPlatform: true, ExternalCode: "x", Amount: 4}}}, withdrawapi.ReasonDetailTargetInvalid, "details[0]"},
		{&withdrawapi.AllinpayShopoint{OutRequestNo: "", Details: []withdrawapi.AllinpayDetail{{IsPlatform: true, Amount: 4}}}, withdrawapi.ReasonInvalidOutRequestNo, "out_request_no"},
	} {
		err := tc.cmd.Validate()
		var r *withdrawapi.Rejection
		if !errors.As(err, &r) || r.Code != tc.code || r.Field != tc.field {
			t.Errorf("%T: Validate = %v, want %s at %s", tc.cmd, err, tc.code, tc.field)
		}
		if b, err := tc.cmd.Marshal(); err == nil || b != nil {
			t.Errorf("%T: Marshal produced an invalid command", tc.cmd)
		}
	}
}

// TestPublicNamesAreTheContract: the exported enumerations are the
// internal ones, value for value.
func TestPublicNamesAreTheContract(t *testing.T) {
	public := []withdrawapi.ReasonCode{withdrawapi.ReasonInvalidFieldType, withdrawapi.ReasonUnknownField, withdrawapi.ReasonDuplicateField,
		withdrawapi.ReasonFieldNotAllowed, withdrawapi.ReasonInvalidChannel, withdrawapi.ReasonInvalidAccount, withdrawapi.ReasonAccountNotConfigured,
		withdrawapi.ReasonInvalidMchID, withdrawapi.ReasonInvalidOutRequestNo, withdrawapi.ReasonInvalidAmount, withdrawapi.ReasonAmountOverLimit,
		withdrawapi.ReasonAmountMismatch, withdrawapi.ReasonFieldRequired, withdrawapi.ReasonFieldTooLong, withdrawapi.ReasonInvalidEnum,
		withdrawapi.ReasonPayeeMchIDRequired, withdrawapi.ReasonPayeeMchIDNotAllowed, withdrawapi.ReasonPayeeMchIDMismatch,
		withdrawapi.ReasonPayeeAccountTypeNotAllowed, withdrawapi.ReasonDetailsRequired, withdrawapi.ReasonDetailTargetInvalid, withdrawapi.ReasonRequestConflict}
	var a, b []string
	for _, c := range public {
		a = append(a, string(c))
	}
	for _, c := range withdrawal.ReasonCodes {
		b = append(b, string(c))
	}
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("public reason codes %v, intake's %v", a, b)
	}
	var chans []string
	for _, c := range []withdrawapi.Channel{withdrawapi.ChannelWeChatEcommerce, withdrawapi.ChannelWeChatPlatform, withdrawapi.ChannelWeChatCancel, withdrawapi.ChannelAllinpayShopoint} {
		chans = append(chans, string(c))
	}
	var internal []string
	for _, c := range withdrawal.Channels {
		internal = append(internal, string(c))
	}
	if !slices.Equal(chans, internal) {
		t.Errorf("channels %v, intake's %v", chans, internal)
	}
	for _, s := range []withdrawal.State{withdrawal.StateAccepted, withdrawal.StateSubmitting, withdrawal.StateSubmitted, withdrawal.StateUnknown,
		withdrawal.StateSucceeded, withdrawal.StateFailed, withdrawal.StateReversed, withdrawal.StateRejected} {
		if withdrawapi.State(s).Final() != s.Final() {
			t.Errorf("%s: Final differs", s)
		}
		if s.Versioned() && !strings.HasPrefix(string(s.EventType()), "withdrawal.") {
			t.Errorf("%s: event type %q", s, s.EventType())
		}
	}
}

// TestDecodeEventReadsWhatIsPublished: an event as the outbox encodes it
// decodes field for field; unknown fields are ignored; broken ones fail.
func TestDecodeEventReadsWhatIsPublished(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123e6, withdrawal.Beijing)
	in := withdrawal.Event{EventID: withdrawal.NewID(), Type: withdrawal.EventSubmitted, WithdrawalID: withdrawal.NewID(), Version: 2,
		Channel: withdrawal.ChannelWeChatPlatform, Account: "default", OutRequestNo: "P1", State: withdrawal.StateSubmitted,
		PreviousState: withdrawal.StateSubmitting, ProviderStatus: "CREATE_SUCCESS", ProviderRef: "wd", Amount: 1, OccurredAt: withdrawal.FormatEventTime(at)}
	b, _ := json.Marshal(&in)
	ev, err := withdrawapi.DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	want := withdrawapi.Event{EventID: in.EventID, Type: withdrawapi.EventSubmitted, WithdrawalID: in.WithdrawalID, Version: 2,
		Channel: withdrawapi.ChannelWeChatPlatform, Account: "default", OutRequestNo: "P1", State: withdrawapi.StateSubmitted,
		PreviousState: withdrawapi.StateSubmitting, ProviderStatus: "CREATE_SUCCESS", ProviderRef: "wd", Amount: 1}
	got := *ev
	if !got.OccurredAt.Equal(at) {
		t.Errorf("occurred_at %v, want %v", got.OccurredAt, at)
	}
	got.OccurredAt = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v\nwant %+v", got, want)
	}
	if _, err := withdrawapi.DecodeEvent([]byte(strings.Replace(string(b), `{`, `{"added_later":1,`, 1))); err != nil {
		t.Errorf("unknown field: %v", err)
	}
	for _, bad := range []string{`[]`, `{}`, `{"event_id":"x"}`, `{"event_id":"x","type":"withdrawal.accepted","version":1}`, `{"event_id":"x","type":"withdrawal.accepted","withdrawal_id":"w","version":1,"occurred_at":"yesterday"}`} {
		if _, err := withdrawapi.DecodeEvent([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestFollowsAndDeduper(t *testing.T) {
	ev := func(id string, v int) *withdrawapi.Event {
		typ := withdrawapi.EventSubmitted
		if v == 0 {
			typ = withdrawapi.EventRejected
		}
		return &withdrawapi.Event{EventID: id, Type: typ, WithdrawalID: map[bool]string{true: "", false: "w"}[v == 0], Version: v}
	}
	if ev("a", 3).Follows(2) != withdrawapi.Next || ev("a", 2).Follows(2) != withdrawapi.Duplicate ||
		ev("a", 1).Follows(2) != withdrawapi.Duplicate || ev("a", 4).Follows(2) != withdrawapi.Gap {
		t.Error("Follows")
	}
	d := withdrawapi.NewDeduper()
	var got []string
	for _, e := range []*withdrawapi.Event{ev("e1", 1), ev("e1", 1), ev("e2", 2), ev("e4", 4), ev("e3", 3), ev("r", 0), ev("r", 0), ev("r2", 0)} {
		got = append(got, d.Observe(e).String())
	}
	if want := "next duplicate next gap duplicate next duplicate next"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}
