package withdrawal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxCommandBytes is the largest command accepted. The biggest legitimate
// command (cancel-withdraw with payee data and media ids) is a few KiB;
// anything far larger is not a command and goes to the dead letters unparsed.
const MaxCommandBytes = 64 << 10

// Decode parses one message value from the commands topic.
//
// It fails in one of two ways, and the difference decides where the message
// goes:
//   - *Undecodable: the bytes cannot be identified as a command (empty, too
//     large, not a JSON object, no string out_request_no). Dead-letter them.
//   - *Rejection: the command is identified (the returned Command carries at
//     least its channel, account and out_request_no as sent) but malformed:
//     a wrong type or an unknown field. Publish a withdrawal.rejected event.
//
// Decode does not validate the values; call Validate on a decoded command.
// Account defaults to DefaultAccount.
func Decode(value []byte) (*Command, error) {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil, &Undecodable{Reason: "empty value"}
	}
	if len(value) > MaxCommandBytes {
		return nil, &Undecodable{Reason: fmt.Sprintf("value of %d bytes exceeds the %d-byte limit", len(value), MaxCommandBytes)}
	}
	// The common case, a well-formed command, is parsed once. Only a
	// command that fails the strict decode is parsed again, leniently, to
	// find out whether it can be identified at all.
	var cmd Command
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(&cmd)
	if err == nil && cmd.OutRequestNo != "" && onlySpace(value[dec.InputOffset():]) {
		if cmd.Account == "" {
			cmd.Account = DefaultAccount
		}
		for _, raw := range []struct {
			name string
			v    json.RawMessage
		}{{"proof_media_list", cmd.ProofMediaList}, {"additional_materials", cmd.AdditionalMaterials}} {
			if len(raw.v) > 0 && raw.v[0] != '{' {
				return &Command{Channel: cmd.Channel, Account: cmd.Account, OutRequestNo: cmd.OutRequestNo},
					reject(ReasonInvalidFieldType, raw.name, "must be a JSON object")
			}
		}
		return &cmd, nil
	}
	id, ierr := identify(value)
	if ierr != nil {
		return nil, ierr
	}
	if err == nil {
		// identify accepted what the strict decode did: unreachable, as
		// both require one object with a string out_request_no.
		err = errors.New("malformed command")
	}
	return id, decodeRejection(err)
}

// onlySpace reports whether b is JSON white space only.
func onlySpace(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r\n")) == 0
}

// identify extracts the idempotency key from a message, tolerating every
// other field being wrong, so that a malformed command can still be answered
// with a rejection event that upstream can correlate.
func identify(value []byte) (*Command, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, &Undecodable{Reason: fmt.Sprintf("not JSON: %v", err)}
		}
		return nil, &Undecodable{Reason: "not a JSON object"}
	}
	if fields == nil { // the literal null
		return nil, &Undecodable{Reason: "not a JSON object"}
	}
	var id Command
	if err := json.Unmarshal(fields["out_request_no"], &id.OutRequestNo); err != nil || id.OutRequestNo == "" {
		return nil, &Undecodable{Reason: "no out_request_no string"}
	}
	// A wrongly typed channel or account leaves it empty here; the full
	// decode then rejects the command with INVALID_FIELD_TYPE.
	_ = json.Unmarshal(fields["channel"], &id.Channel)
	_ = json.Unmarshal(fields["account"], &id.Account)
	if id.Account == "" {
		id.Account = DefaultAccount
	}
	return &id, nil
}

// decodeRejection turns a json decoding error into a Rejection naming the
// field, without echoing the field's value (it may be sensitive).
func decodeRejection(err error) *Rejection {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return reject(ReasonInvalidFieldType, typeErr.Field, "expected %s, got JSON %s", typeErr.Type, typeErr.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return reject(ReasonUnknownField, strings.Trim(name, `"`), "no channel defines this field")
	}
	return reject(ReasonInvalidFieldType, "", "malformed command: %v", err)
}
