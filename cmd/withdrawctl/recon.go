package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/store"
)

// recon dispatches "recon show".
func (c *cli) recon(args []string) error {
	if len(args) == 0 || args[0] != "show" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(c.stdout, "Usage: withdrawctl recon show --date YYYY-MM-DD [flags]\n")
			return nil
		}
		return errors.New(`recon: want "recon show --date YYYY-MM-DD" (see withdrawctl --help)`)
	}
	fs := c.flags("recon show", "--date YYYY-MM-DD [flags]",
		`Shows a bill date's reconciliation against WeChat Pay's fund-flow bills: counts and sums per
outcome, the state of each bill, and every finding (all but MATCHED), through the admin API of a
poller. See docs/reconciliation.md.`)
	client := c.adminFlags(fs)
	date := fs.String("date", "", "the bill date (Beijing), YYYY-MM-DD; default yesterday in Beijing")
	asJSON := fs.Bool("json", false, "print the API's JSON as is")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *date == "" {
		bj := time.FixedZone("CST", 8*3600)
		*date = time.Now().In(bj).AddDate(0, 0, -1).Format("2006-01-02")
	}
	if _, err := time.Parse("2006-01-02", *date); err != nil {
		return fmt.Errorf("recon show: --date %q: want YYYY-MM-DD", *date)
	}
	a, err := client()
	if err != nil {
		return err
	}
	path := "/v1/recon/" + url.PathEscape(*date)
	ctx := context.Background()
	if *asJSON {
		var raw json.RawMessage
		if err := a.call(ctx, http.MethodGet, path, &raw); err != nil {
			return err
		}
		_, err := c.stdout.Write(raw)
		return err
	}
	var v admin.ReconView
	if err := a.call(ctx, http.MethodGet, path, &v); err != nil {
		return err
	}
	printRecon(c.stdout, &v)
	return nil
}

func yuanOf(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func printRecon(out io.Writer, v *admin.ReconView) {
	d := v.Day
	fmt.Fprintf(out, "Reconciliation of %s: %s (%d of %d bills read, %d bill lines, %d not withdrawals)\n\n",
		d.BillDate, d.Status, d.SourcesDone, d.SourcesTotal, d.BillLines, d.OtherLines)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "outcome\tcount\tyuan\t")
	for _, o := range store.ReconOutcomes {
		n, fen := d.Count(o)
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", o, n, yuanOf(fen))
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\nBills:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, s := range v.Sources {
		line := fmt.Sprintf("  %s\t%s\tattempts %d\tlines %d", s.Source, s.Status, s.Attempts, s.BillLines)
		if s.LastError != "" {
			line += "\tlast error: " + s.LastError
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	if len(v.Findings) == 0 {
		fmt.Fprintln(out, "\nNo findings.")
		return
	}
	fmt.Fprintln(out, "\nFindings:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  outcome\tbill\tout_request_no\tprovider_ref\tbill yuan\tour yuan\tour state\twithdrawal id\tnote")
	for _, it := range v.Findings {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Outcome, it.Source, it.OutRequestNo, it.ProviderRef,
			yuanOf(it.BillAmount), yuanOf(it.OurAmount), it.OurState, it.WithdrawalID, it.Note)
	}
	_ = tw.Flush()
	if v.Truncated {
		fmt.Fprintf(out, "(more findings than the %d shown: --json, or query recon_items)\n", admin.ReconFindingsMax)
	}
}
