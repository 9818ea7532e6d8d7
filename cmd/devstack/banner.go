package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/devstack"
)

// printBanner prints, in a few lines, where everything is and how to
// produce a command and read the events, with kcat and with withdrawctl.
func printBanner(w io.Writer, s *devstack.Stack, took time.Duration) {
	broker := s.Brokers[0]
	kafka := strings.Join(s.Brokers, ",")
	if s.Embedded {
		kafka += " (embedded)"
	}
	logs := s.LogFile
	if logs == "" {
		logs = "stderr"
	}
	http := "http://" + s.HTTPAddr
	orn := "DEV" + time.Now().Format("20060102150405")
	cmd := fmt.Sprintf(`{"channel":"wechatpay_platform","out_request_no":"%s","amount":100,"account_type":"BASIC","remark":"devstack"}`, orn)

	fmt.Fprintf(w, "withdraw devstack is up (%s). Ctrl-C stops it.\n", took.Round(time.Millisecond))
	fmt.Fprintf(w, "  kafka    %s  topics %s → %s, dead letters %s\n", kafka, devstack.CommandsTopic, devstack.EventsTopic, devstack.DLQTopic)
	fmt.Fprintf(w, "  http     %s/metrics /healthz /readyz, WeChat callbacks /notify/wechatpay/default\n", http)
	fmt.Fprintf(w, "  console  %s/ui/  log in with the admin token %s\n", http, s.AdminToken)
	fmt.Fprintf(w, "  admin    %s/v1/withdrawals/{id}  Authorization: Bearer %s  (token in %s)\n", http, s.AdminToken, s.AdminTokenFile)
	fmt.Fprintf(w, "  sandbox  http://%s  ledger http://%s/_sandbox/ledger  account \"default\" on all four channels\n", s.SandboxAddr, s.SandboxAddr)
	fmt.Fprintf(w, "  data     %s  (%s)  logs %s\n", s.DataDir, s.Database, logs)
	fmt.Fprintf(w, "Produce a command and read the events, with kcat:\n")
	fmt.Fprintf(w, "  echo '%s:%s' | kcat -P -b %s -t %s -K:\n", orn, cmd, broker, devstack.CommandsTopic)
	fmt.Fprintf(w, "  kcat -C -b %s -t %s -o beginning -f '%%k %%s\\n'\n", broker, devstack.EventsTopic)
	fmt.Fprintf(w, "or with the project's CLI:\n")
	fmt.Fprintf(w, "  go run ./cmd/withdrawctl submit --kafka-brokers %s --channel wechatpay_platform --out-request-no %sC --amount 100 --account-type BASIC\n", broker, orn)
	fmt.Fprintf(w, "  go run ./cmd/withdrawctl events --kafka-brokers %s --from beginning\n", broker)
	fmt.Fprintf(w, "  go run ./cmd/withdrawctl show --admin-url %s --admin-token-file %s --channel wechatpay_platform --out-request-no %sC\n", http, s.AdminTokenFile, orn)
	fmt.Fprintf(w, "Sandbox magic amounts (fen part): .41 FAIL  .42 CLOSE  .43 refunded (REVERSED)  .44 INIT; others succeed. Try --demo 100.\n")
	if s.Inherited > 0 {
		fmt.Fprintf(w, "NOTE: %d withdrawals of a previous run were still at the provider, but the sandbox keeps its orders in memory only:\n"+
			"      they are re-sent once \"not found\" is conclusive, or flagged for an operator. --fresh starts clean.\n", s.Inherited)
	}
}
