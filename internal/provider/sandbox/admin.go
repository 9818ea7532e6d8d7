package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}

func (s *Server) adminKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.PublicKeys())
}

func (s *Server) adminLedger(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Ledger())
}

// MerchantRegistration is the body of POST /_sandbox/merchants: kind
// "wechatpay" (mchid, serial, public_key_pem, apiv3_key) or "allinpay"
// (app_id, public_key_pem).
type MerchantRegistration struct {
	Kind         string `json:"kind"`
	MchID        string `json:"mchid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	AppID        string `json:"app_id,omitempty"`
	PublicKeyPEM string `json:"public_key_pem"`
	// APIv3Key is the 32-character key callbacks are encrypted with.
	APIv3Key string `json:"apiv3_key,omitempty"`
}

func (s *Server) adminMerchants(w http.ResponseWriter, r *http.Request) {
	var m MerchantRegistration
	if err := decodeAdmin(r, &m); err != nil {
		adminError(w, err)
		return
	}
	pub, err := wechatpay.ParsePublicKey([]byte(m.PublicKeyPEM))
	if err != nil {
		adminError(w, err)
		return
	}
	switch m.Kind {
	case "wechatpay":
		var k []byte
		if m.APIv3Key != "" {
			k = []byte(m.APIv3Key)
		}
		err = s.AddWeChatMerchant(WeChatMerchant{MchID: m.MchID, Serial: m.Serial, PublicKey: pub, APIv3Key: k})
	case "allinpay":
		err = s.AddAllinpayApp(AllinpayApp{AppID: m.AppID, PublicKey: pub})
	default:
		err = fmt.Errorf("kind must be wechatpay or allinpay")
	}
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "registered"})
}

func (s *Server) adminFaultsGet(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.snapshot())
}

// adminFaultsSet takes {"endpoint": Fault, …}; a zero Fault clears one.
func (s *Server) adminFaultsSet(w http.ResponseWriter, r *http.Request) {
	var m map[string]Fault
	if err := decodeAdmin(r, &m); err != nil {
		adminError(w, err)
		return
	}
	for e, f := range m {
		if err := s.SetFault(e, f); err != nil {
			adminError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, s.faults.snapshot())
}

func (s *Server) adminFaultsClear(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	writeJSON(w, http.StatusOK, map[string]Fault{})
}

// adminBalances takes {"<mchid or sub_mchid>": fen, …}.
func (s *Server) adminBalances(w http.ResponseWriter, r *http.Request) {
	var m map[string]int64
	if err := decodeAdmin(r, &m); err != nil {
		adminError(w, err)
		return
	}
	for k, v := range m {
		s.SetBalance(k, v)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}
