package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// NewWithdrawalRow turns a validated command into a new ACCEPTED row,
// version 1, due for submission now. payee_info, when present, is sealed
// with the keyring and bound to the withdrawal's key; it never reaches the
// params column.
func NewWithdrawalRow(id string, cmd *withdrawal.Command, paramsHash string, keys *pii.Keyring, now time.Time) (Withdrawal, error) {
	plain := *cmd
	plain.PayeeInfo = nil
	params, err := json.Marshal(&plain)
	if err != nil {
		return Withdrawal{}, fmt.Errorf("encode params of %s: %w", cmd.OutRequestNo, err)
	}
	row := Withdrawal{
		ID:            id,
		Channel:       string(cmd.Channel),
		Account:       cmd.Account,
		OutRequestNo:  cmd.OutRequestNo,
		MerchantKey:   cmd.MerchantKey(),
		Amount:        cmd.TotalAmount(),
		ParamsHash:    paramsHash,
		Params:        params,
		State:         string(withdrawal.StateAccepted),
		Version:       1,
		NextAttemptAt: now,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if cmd.PayeeInfo != nil {
		if keys == nil {
			return Withdrawal{}, fmt.Errorf("withdrawal %s carries payee_info but no PII keyring is configured", cmd.OutRequestNo)
		}
		payee, err := json.Marshal(cmd.PayeeInfo)
		if err != nil {
			return Withdrawal{}, fmt.Errorf("encode payee_info of %s: %w", cmd.OutRequestNo, err)
		}
		row.SensitiveData, row.SensitiveKeyID = keys.Seal(payee, sensitiveAAD(cmd.Key()))
	}
	return row, nil
}

// Command rebuilds the full command from the row, opening payee_info with
// the keyring. Only the dispatcher, building the provider request, needs
// this; everything that displays a withdrawal uses MaskedCommand.
func (w *Withdrawal) Command(keys *pii.Keyring) (*withdrawal.Command, error) {
	var cmd withdrawal.Command
	if err := json.Unmarshal(w.Params, &cmd); err != nil {
		return nil, fmt.Errorf("decode params of withdrawal %s: %w", w.ID, err)
	}
	if len(w.SensitiveData) == 0 {
		return &cmd, nil
	}
	if keys == nil {
		return nil, fmt.Errorf("withdrawal %s has sealed payee_info but no PII keyring is configured", w.ID)
	}
	plain, err := keys.Open(w.SensitiveKeyID, w.SensitiveData, sensitiveAAD(cmd.Key()))
	if err != nil {
		return nil, fmt.Errorf("open payee_info of withdrawal %s: %w", w.ID, err)
	}
	cmd.PayeeInfo = new(withdrawal.PayeeInfo)
	if err := json.Unmarshal(plain, cmd.PayeeInfo); err != nil {
		return nil, fmt.Errorf("decode payee_info of withdrawal %s: %w", w.ID, err)
	}
	return &cmd, nil
}

// MaskedCommand is Command with every sensitive value masked (see
// withdrawal.PayeeInfo.Masked), for the admin API and the CLI.
func (w *Withdrawal) MaskedCommand(keys *pii.Keyring) (*withdrawal.Command, error) {
	cmd, err := w.Command(keys)
	if err != nil {
		return nil, err
	}
	cmd.PayeeInfo = cmd.PayeeInfo.Masked()
	return cmd, nil
}

// Event describes the row's current state as the event of its latest
// version.
func (w *Withdrawal) Event(eventID string, previous withdrawal.State, at time.Time) withdrawal.Event {
	state := withdrawal.State(w.State)
	return withdrawal.Event{
		EventID:        eventID,
		Type:           state.EventType(),
		WithdrawalID:   w.ID,
		Version:        w.Version,
		Channel:        withdrawal.Channel(w.Channel),
		Account:        w.Account,
		OutRequestNo:   w.OutRequestNo,
		State:          state,
		PreviousState:  previous,
		ProviderStatus: w.ProviderStatus,
		ProviderRef:    w.ProviderRef,
		Amount:         w.Amount,
		ReasonCode:     w.ReasonCode,
		Reason:         w.Reason,
		OccurredAt:     withdrawal.FormatEventTime(at),
	}
}

// sensitiveAAD binds sealed payee data to the withdrawal it belongs to.
func sensitiveAAD(k withdrawal.Key) []byte {
	return []byte(string(k.Channel) + "\x00" + k.Account + "\x00" + k.OutRequestNo)
}
