package withdrawal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ParamsHash is the canonical fingerprint of everything a command asks for:
// two commands with the same key are the same withdrawal exactly when their
// hashes are equal. It is hex SHA-256 over the command's canonical JSON: the
// struct's fixed field order, empty fields omitted, the default account
// filled in, and free-form objects (proof_media_list, additional_materials)
// re-encoded with sorted keys, so that formatting and key order upstream do
// not matter. Adding an optional field later keeps every old hash valid.
func ParamsHash(c *Command) (string, error) {
	canon := *c
	if canon.Account == "" {
		canon.Account = DefaultAccount
	}
	var err error
	if canon.ProofMediaList, err = canonicalJSON(c.ProofMediaList); err != nil {
		return "", fmt.Errorf("proof_media_list: %w", err)
	}
	if canon.AdditionalMaterials, err = canonicalJSON(c.AdditionalMaterials); err != nil {
		return "", fmt.Errorf("additional_materials: %w", err)
	}
	b, err := json.Marshal(&canon)
	if err != nil {
		return "", fmt.Errorf("encode command: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-encodes a JSON value with object keys sorted and
// insignificant white space removed. Numbers keep their literal text.
func canonicalJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v) // maps marshal with sorted keys
}
