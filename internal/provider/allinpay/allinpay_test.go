package allinpay

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/paycore/withdraw/internal/withdrawal"
)

func TestSigningStringVector(t *testing.T) {
	p := map[string]string{
		"appId": "1581648210684", "method": MethodWithdraw, "version": "1.0", "charset": "UTF-8", "format": "JSON",
		"timestamp": "2026-11-22 10:00:00", "bizContent": `{"orderId":"1236158361962","details":[{"accountUserId":100,"withdrawAmount":1.10}]}`,
		"signType": "RSA2", "sign": "ignored", "empty": "",
	}
	want := `appId=1581648210684&bizContent={"orderId":"1236158361962","details":[{"accountUserId":100,"withdrawAmount":1.10}]}` +
		`&charset=UTF-8&format=JSON&method=allinpay.shopoint.fundService.withdraw&timestamp=2026-11-22 10:00:00&version=1.0`
	if got := SigningString(p); got != want {
		t.Fatalf("signing string\n got %s\nwant %s", got, want)
	}
	// The form round trip keeps the values raw.
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	back, _ := url.ParseQuery(form.Encode())
	if got := SigningString(FormParams(back)); got != want {
		t.Fatalf("after form round trip: %s", got)
	}
}

func TestWithdrawBizMultiDetail(t *testing.T) {
	id := int64(100)
	cmd := &withdrawal.Command{Channel: withdrawal.ChannelAllinpayShopoint, OutRequestNo: "1236158361962",
		Details: []withdrawal.AllinpayDetail{{AccountUserID: &id, Amount: 1}, {ExternalCode: "abc123", Amount: 110, Summary: "s"}, {IsPlatform: true, Amount: 99999999}}}
	b, err := BuildWithdrawBiz(cmd)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(b)
	want := `{"orderId":"1236158361962","details":[{"accountUserId":100,"withdrawAmount":0.01},{"externalCode":"abc123","withdrawAmount":1.10,"summary":"s"},{"isPlatform":true,"withdrawAmount":999999.99}]}`
	if string(got) != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestAnswerParams(t *testing.T) {
	p, err := AnswerParams([]byte(`{"code":0,"msg":"","data":{"orderId":"1"},"sign":"x","token":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := SigningString(p); got != `code=0&data={"orderId":"1"}` {
		t.Fatalf("%s", got)
	}
}
