package withdrawal

import (
	"bytes"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxCommandBytes is the largest command accepted. The biggest legitimate
// command (cancel-withdraw with payee data and media ids) is a few KiB;
// anything far larger is not a command and goes to the dead letters unparsed.
const MaxCommandBytes = 64 << 10

// MaxFreeFormDepth is the deepest nesting of objects and arrays accepted in
// the free-form proof_media_list and additional_materials, the value's own
// object counting as one. The provider's shapes are 3 deep
// ({"proof_payee_media":[{…}]}) and 2 deep ({"additional_media":[…]}).
const MaxFreeFormDepth = 3

// strict are the options of the decode proper. They are JSON v2's defaults
// (RFC 7493 I-JSON: no duplicate names, valid UTF-8 only; names matched
// byte for byte) spelled out, because each one closes a way for two readers
// of the same bytes to see different commands, plus the refusal of names the
// command does not define.
var strict = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Decode parses one message value from the commands topic.
//
// It fails in one of two ways, and the difference decides where the message
// goes:
//   - *Undecodable: the bytes cannot be identified as a command (empty, too
//     large, not a JSON object, no single string out_request_no). Dead-letter
//     them.
//   - *Rejection: the command is identified (the returned Command carries
//     its channel, account and out_request_no as sent, each empty when it
//     is absent, mistyped or given twice with different values) but
//     malformed: a wrong type, an unknown or repeated name, text that is not
//     valid UTF-8 or has a NUL, free-form data nested too deep. Publish a
//     withdrawal.rejected event.
//
// Names match exactly, byte for byte: "Amount" is an unknown field, not
// amount. Decode does not validate the values; call Validate on a decoded
// command. Account defaults to DefaultAccount.
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
	err := json.Unmarshal(value, &cmd, strict)
	if err == nil && cmd.OutRequestNo != "" {
		if cmd.Account == "" {
			cmd.Account = DefaultAccount
		}
		if r := checkText(value, &cmd); r != nil {
			return &Command{Channel: cmd.Channel, Account: cmd.Account, OutRequestNo: cmd.OutRequestNo}, r
		}
		return &cmd, nil
	}
	id, ierr := identify(value)
	if ierr != nil {
		return nil, ierr
	}
	if err == nil {
		// identify accepted what the strict decode did: unreachable, as
		// both require one object with a non-empty out_request_no.
		return id, reject(ReasonInvalidFieldType, "", "malformed command")
	}
	return id, decodeRejection(err)
}

// checkText applies the rules JSON itself leaves open to a command that
// decoded: no NUL in any string (C-based systems downstream cut strings
// there), and free-form values that are objects of bounded depth.
func checkText(value []byte, cmd *Command) *Rejection {
	for _, f := range []struct {
		name string
		v    jsonv1.RawMessage
	}{{"proof_media_list", cmd.ProofMediaList}, {"additional_materials", cmd.AdditionalMaterials}} {
		if len(f.v) == 0 {
			continue
		}
		if f.v[0] != '{' {
			return reject(ReasonInvalidFieldType, f.name, "must be a JSON object")
		}
		if depth(f.v) > MaxFreeFormDepth {
			return reject(ReasonInvalidFieldType, f.name, "objects and arrays nested more than %d deep", MaxFreeFormDepth)
		}
	}
	// JSON spells a NUL only as this escape (a raw one is a syntax error),
	// so only a command containing it needs the walk; the walk tells an
	// escaped backslash followed by "u0000" from a NUL.
	if bytes.Contains(value, []byte(`\u0000`)) {
		if ptr, found := findNUL(value); found {
			field, _ := fieldPath(ptr)
			return reject(ReasonInvalidFieldType, field, "text must not contain NUL characters")
		}
	}
	return nil
}

// depth returns how deeply objects and arrays nest in v, a JSON value the
// strict decode has already checked.
func depth(v []byte) int {
	dec := jsontext.NewDecoder(bytes.NewBuffer(v))
	deepest := 0
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return deepest
		}
		if k := tok.Kind(); k == '{' || k == '[' {
			deepest = max(deepest, dec.StackDepth())
		}
	}
}

// findNUL returns the JSON pointer of the first string (name or value) in
// value that contains a NUL character.
func findNUL(value []byte) (jsontext.Pointer, bool) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(value))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		if tok.Kind() == '"' && strings.IndexByte(tok.String(), 0) >= 0 {
			return dec.StackPointer(), true
		}
	}
}

// identify extracts the idempotency key from a message, tolerating every
// other field being wrong (mistyped, repeated, invalid UTF-8), so that a
// malformed command can still be answered with a rejection event that
// upstream can correlate. It reads only the exact names out_request_no,
// channel and account. A name given twice with different values is never
// resolved by picking one: an ambiguous channel or account is left empty,
// and an ambiguous out_request_no makes the message undecodable, because a
// rejection keyed by either value could answer a request that was never
// made, or settle the wrong one upstream.
func identify(value []byte) (*Command, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(value), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, notJSON(err)
	}
	if tok.Kind() != '{' {
		return nil, &Undecodable{Reason: "not a JSON object"}
	}
	var no, channel, account identityMember
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, notJSON(err)
		}
		var m *identityMember
		switch name.String() {
		case "out_request_no":
			m = &no
		case "channel":
			m = &channel
		case "account":
			m = &account
		default:
			if err := dec.SkipValue(); err != nil {
				return nil, notJSON(err)
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return nil, notJSON(err)
		}
		m.add(v)
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, notJSON(err)
	}
	switch _, err := dec.ReadToken(); {
	case err == nil:
		return nil, &Undecodable{Reason: "more than one JSON value"}
	case err != io.EOF:
		return nil, notJSON(err)
	}
	if no.ambiguous {
		return nil, &Undecodable{Reason: "out_request_no appears more than once with different values"}
	}
	var id Command
	var ok bool
	if id.OutRequestNo, ok = no.text(); !ok || id.OutRequestNo == "" {
		return nil, &Undecodable{Reason: "no out_request_no string of valid UTF-8"}
	}
	// A mistyped or ambiguous channel or account is left empty here; the
	// rejection then names no channel or account rather than a guess.
	s, _ := channel.text()
	id.Channel = Channel(s)
	id.Account, _ = account.text()
	if account.count == 0 {
		id.Account = DefaultAccount
	}
	return &id, nil
}

// identityMember collects the occurrences of one identity name in an object.
type identityMember struct {
	first     jsontext.Value
	count     int
	ambiguous bool // a later occurrence differs from the first
}

func (m *identityMember) add(v jsontext.Value) {
	m.count++
	if m.count == 1 {
		m.first = v.Clone()
	} else if !bytes.Equal(v, m.first) {
		m.ambiguous = true
	}
}

// text is the member's string value, if it has exactly one, of valid UTF-8.
func (m *identityMember) text() (string, bool) {
	if m.count == 0 || m.ambiguous || m.first.Kind() != '"' {
		return "", false
	}
	b, err := jsontext.AppendUnquote(nil, m.first)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// notJSON describes a syntax error by its position only: the parser's
// message may quote the input.
func notJSON(err error) *Undecodable {
	var syntax *jsontext.SyntacticError
	if errors.As(err, &syntax) {
		return &Undecodable{Reason: fmt.Sprintf("not JSON: syntax error at byte %d", syntax.ByteOffset)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &Undecodable{Reason: "not JSON: unexpected end of input"}
	}
	return &Undecodable{Reason: "not JSON"}
}

// decodeRejection turns a strict decoding error into a Rejection naming the
// field, never the field's value (it may be sensitive). Only errors of a
// value that identify could read arrive here, so a syntactic error is a
// repeated name or invalid UTF-8, which identify tolerates.
func decodeRejection(err error) *Rejection {
	var syntax *jsontext.SyntacticError
	if errors.As(err, &syntax) {
		field, exact := fieldPath(syntax.JSONPointer)
		if errors.Is(syntax.Err, jsontext.ErrDuplicateName) {
			if exact {
				return reject(ReasonDuplicateField, field, "appears more than once in its object")
			}
			return reject(ReasonDuplicateField, field, "a name appears more than once in one of its objects")
		}
		return reject(ReasonInvalidFieldType, field, "text must be valid UTF-8 (and \\u escapes whole surrogate pairs)")
	}
	var semantic *json.SemanticError
	if errors.As(err, &semantic) {
		field, exact := fieldPath(semantic.JSONPointer)
		if errors.Is(semantic.Err, json.ErrUnknownName) {
			if exact {
				return reject(ReasonUnknownField, field, "no channel defines this field (names are matched exactly, case included)")
			}
			return reject(ReasonUnknownField, field, "has a member that no channel defines (its name is not shown)")
		}
		return reject(ReasonInvalidFieldType, field, "expected %s, got a JSON %s", expected(semantic.GoType), kindName(semantic.JSONKind))
	}
	return reject(ReasonInvalidFieldType, "", "malformed command")
}

// fieldPath renders a JSON pointer into the command as the field path of a
// rejection ("details[1].amount"). Only names the command defines, indexes of
// details and, last, one unknown name that is a plain ASCII identifier are
// shown; the path stops before anything else (a name that could carry data,
// the inside of a free-form value), and exact reports whether it did not.
func fieldPath(ptr jsontext.Pointer) (path string, exact bool) {
	toks := slices.Collect(ptr.Tokens())
	var b strings.Builder
	for i, tok := range toks {
		prev := ""
		if i > 0 {
			prev = toks[i-1]
		}
		switch {
		case prev == "proof_media_list" || prev == "additional_materials":
			return b.String(), false
		case prev == "details" && isDigits(tok):
			b.WriteString("[" + tok + "]")
		case fieldNames[tok] || i == len(toks)-1 && plainName(tok):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
		default:
			return b.String(), false
		}
	}
	return b.String(), true
}

// fieldNames are the JSON names the command defines, at every level.
var fieldNames = func() map[string]bool {
	names := map[string]bool{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && !names[name] {
				names[name] = true
				add(f.Type)
			}
		}
	}
	add(reflect.TypeFor[Command]())
	return names
}()

// plainName reports whether an unknown name is safe to repeat in a
// rejection: an ASCII identifier that starts with a letter, so never a
// number, nor text in another script.
func plainName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// expected names what a Go type of the command takes in JSON.
func expected(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer within 64 bits (no fraction, no exponent)"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Pointer:
		return "an object"
	case reflect.Slice:
		if t == reflect.TypeFor[jsonv1.RawMessage]() {
			return "an object"
		}
		return "an array"
	}
	return t.Kind().String()
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
