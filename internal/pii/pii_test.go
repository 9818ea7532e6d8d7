package pii

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSealOpenRotate(t *testing.T) {
	k1 := GenerateKeyLine("k1")
	old, err := ParseKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	ct, id := old.Seal([]byte("6222020200112233445"), []byte("row-1"))
	if id != "k1" || bytes.Contains(ct, []byte("6222020200112233445")) {
		t.Fatalf("key %s, ciphertext leaks plaintext", id)
	}
	// Rotate: k2 is current, k1 still opens old rows.
	rotated, err := ParseKeyring("# rotated\n" + GenerateKeyLine("k2") + "\n\n" + k1)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CurrentKeyID() != "k2" {
		t.Fatalf("current %s, want k2", rotated.CurrentKeyID())
	}
	plain, err := rotated.Open(id, ct, []byte("row-1"))
	if err != nil || string(plain) != "6222020200112233445" {
		t.Fatalf("open after rotation: %q %v", plain, err)
	}
	if _, err := rotated.Open(id, ct, []byte("row-2")); err == nil {
		t.Fatal("ciphertext opened under another row's aad")
	}
	other, _ := ParseKeyring(GenerateKeyLine("k1"))
	if _, err := other.Open("k1", ct, []byte("row-1")); err == nil {
		t.Fatal("ciphertext opened without the key")
	}
	if _, err := rotated.Open("k9", ct, nil); err == nil {
		t.Fatal("unknown key id accepted")
	}
}

func TestParseErrors(t *testing.T) {
	for name, text := range map[string]string{
		"empty":     "",
		"no key":    "k1",
		"bad b64":   "k1 !!!",
		"short key": "k1 AAAA",
		"dup":       GenerateKeyLine("k1") + "\n" + GenerateKeyLine("k1"),
	} {
		if _, err := ParseKeyring(text); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: error quotes key material: %v", name, err)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{"6222020200112233445": "***************3445", "1234": "****", "": "", "张三丰先生": "*三丰先生"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{
		"张三":           "张*",
		"某某科技有限公司":     "某*******",
		"张":            "*", // a one-character name shows nothing
		"":             "",
		"Li Lei":       "L*****",
		"欧阳娜娜":         "欧***",
		"🙂ab":          "🙂**",
		"a\xffb":       "a**", // an invalid byte counts as one character
		"Ｍｒ．王":         "Ｍ***",
		"测试有限公司":       "测*****",
		"e\u0301clair": "e******", // combining mark: one rune each
	} {
		got := MaskName(in)
		if got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
		if in != "" && utf8.RuneCountInString(got) != max(utf8.RuneCountInString(in), 1) {
			t.Errorf("MaskName(%q) = %q: one character per character", in, got)
		}
	}
}

func TestMaskNumberKeepsLastFour(t *testing.T) {
	for in, want := range map[string]string{
		"110101199003074477": "**************4477",
		"12345":              "*2345",
		"１２３４５":              "*２３４５",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
