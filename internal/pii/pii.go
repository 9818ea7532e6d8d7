// Package pii protects the sensitive payee fields of a withdrawal at rest:
// AES-256-GCM under data keys from configuration, each with an id stored
// beside the ciphertext so that keys can rotate without re-encrypting old
// rows at once.
package pii

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// KeySize is the length of a data key: AES-256.
const KeySize = 32

// Keyring holds the data keys. New data is sealed under the current key;
// any key in the ring opens data sealed under it.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring. current names the key that seals new data and
// must be one of keys; every key must be KeySize bytes.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	k := &Keyring{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if id == "" || strings.ContainsAny(id, " \t\r\n") {
			return nil, fmt.Errorf("pii key id %q: must be non-empty without white space", id)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("pii key %q: %d bytes, want %d", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("pii key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("pii key %q: %w", id, err)
		}
		k.aeads[id] = aead
	}
	if _, ok := k.aeads[current]; !ok {
		return nil, fmt.Errorf("pii: current key %q is not in the keyring", current)
	}
	return k, nil
}

// ParseKeyring reads keys in the text format of the keys file: one key per
// line as "<id> <base64 of 32 bytes>", blank lines and lines starting with
// '#' ignored. The first key is the current one; list the new key first when
// rotating and keep the old ones until no row uses them.
func ParseKeyring(text string) (*Keyring, error) {
	keys := map[string][]byte{}
	current := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, b64, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("pii keys line %d: want \"<id> <base64 key>\"", line)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			// The error text of base64 never contains the key material.
			return nil, fmt.Errorf("pii keys line %d: key %q is not base64: %w", line, id, err)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("pii keys line %d: key id %q repeated", line, id)
		}
		keys[id] = key
		if current == "" {
			current = id
		}
	}
	if current == "" {
		return nil, errors.New("pii keys: no key")
	}
	return NewKeyring(current, keys)
}

// LoadKeyringFile reads a keys file (see ParseKeyring).
func LoadKeyringFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pii keys: %w", err)
	}
	return ParseKeyring(string(b))
}

// GenerateKeyLine returns a new random key in the keys-file format, for
// development set-ups and tests.
func GenerateKeyLine(id string) string {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	return id + " " + base64.StdEncoding.EncodeToString(key)
}

// CurrentKeyID names the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.current }

// Seal encrypts plaintext under the current key. aad binds the ciphertext to
// its owner (the withdrawal's key), so a ciphertext copied onto another row
// does not open there. The result is nonce || ciphertext || tag.
func (k *Keyring) Seal(plaintext, aad []byte) (ciphertext []byte, keyID string) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, aad), k.current
}

// Open decrypts what Seal produced under the key named keyID.
func (k *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("pii: unknown key id %q", keyID)
	}
	if len(ciphertext) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("pii: ciphertext too short")
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("pii: open with key %q: %w", keyID, err)
	}
	return plain, nil
}

// Mask hides all but the last four characters of a sensitive number (an
// account or ID number): "6222020200112233445" becomes
// "***************3445", the part people check against their card. Values
// of four characters or fewer are hidden completely. Use MaskName for
// names, whose last characters identify the holder.
func Mask(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return strings.Repeat("*", n-4) + string(r[n-4:])
}

// MaskName hides all but the first character of a name, one '*' per hidden
// character: "张三" becomes "张*", "某某科技有限公司" becomes "某*******". The
// end of a name is what tells it apart (a given name, a company's trade
// name before 有限公司), so unlike Mask it keeps the start, which is mostly a
// family name or a city. A one-character name is hidden completely.
// Characters are runes; an invalid byte counts as one.
func MaskName(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= 1 {
		return strings.Repeat("*", n)
	}
	first, _ := utf8.DecodeRuneInString(s)
	return string(first) + strings.Repeat("*", n-1)
}
