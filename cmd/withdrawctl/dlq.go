package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Headers the intake adds to a dead letter; a replay drops them. The
// truncated and original_size/original_sha256 ones are only on a dead letter
// cut to fit its topic (docs/intake.md).
var dlqHeaders = map[string]bool{"error": true, "original_topic": true, "original_partition": true, "original_offset": true,
	"truncated": true, "original_size": true, "original_sha256": true,
	"original_key_size": true, "original_key_sha256": true, "original_headers_dropped": true}

// original describes what a truncated dead letter lacks: "-" for a
// complete one.
func original(r record) string {
	if r.header("truncated") != "true" {
		return "-"
	}
	s := fmt.Sprintf("TRUNCATED: value %s bytes sha256=%s", r.header("original_size"), r.header("original_sha256"))
	if k := r.header("original_key_size"); k != "" {
		s += fmt.Sprintf("; key %s bytes sha256=%s", k, r.header("original_key_sha256"))
	}
	if n := r.header("original_headers_dropped"); n != "" {
		s += "; " + n + " header(s) dropped"
	}
	return s
}

func (c *cli) dlqList(args []string) error {
	fs := c.flags("dlq list", "[flags]",
		`Lists the dead-lettered commands (messages the intake could not identify as a command): partition,
offset, time, the intake's error, where it came from, its first bytes, and, for a dead letter
truncated to fit the topic, the original's size and SHA-256 (ORIGINAL; "-" when complete). They may
hold payee data in plaintext, as upstream sent it: keep the output to yourself.`)
	brokerList := c.setting(fs, "kafka-brokers")
	topic := c.setting(fs, "dlq-topic")
	n := fs.Int("bytes", 64, "how many bytes of each value to show")
	limit := fs.Int("limit", 100, "show at most the last N dead letters of each partition (0: all)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("dlq list: unexpected arguments %v", pos)
	}
	_, client, done, err := connect(*brokerList)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ps, bnd, err := topicBounds(ctx, client, *topic)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tTIME\tERROR\tFROM\tKEY\tVALUE\tORIGINAL")
	total := 0
	for _, p := range ps {
		first, last := bnd[p][0], bnd[p][1]
		if *limit > 0 && last-first > int64(*limit) {
			first = last - int64(*limit)
		}
		for off := first; off < last; {
			recs, err := fetch(ctx, client, *topic, p, off, 100*time.Millisecond)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break // compacted or transactional markers: nothing more to read
			}
			for _, r := range recs {
				if r.Offset >= last {
					break
				}
				from := r.header("original_topic") + "/" + r.header("original_partition") + "@" + r.header("original_offset")
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%q\t%s\t%s\n", r.Partition, r.Offset, r.Time.Local().Format(time.RFC3339),
					r.header("error"), from, r.Key, preview(r.Value, *n), original(r))
				total++
				off = r.Offset + 1
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%d dead letter(s) in %s\n", total, *topic)
	return nil
}

// connect parses a --kafka-brokers list and opens a client with a transport
// of its own on it; done releases the client's connections.
func connect(brokerList string) (bl []string, client *kafka.Client, done func(), err error) {
	bl, err = brokers(brokerList)
	if err != nil {
		return nil, nil, nil, err
	}
	client, done = kafkaClient(bl)
	return bl, client, done, nil
}

// topicBounds lists a topic's partitions and, by partition, their first and
// last (next to be written) offsets.
func topicBounds(ctx context.Context, client *kafka.Client, topic string) ([]int, map[int][2]int64, error) {
	ps, err := partitions(ctx, client, topic)
	if err != nil {
		return nil, nil, err
	}
	bnd, err := bounds(ctx, client, topic, ps)
	if err != nil {
		return nil, nil, err
	}
	return ps, bnd, nil
}

// preview quotes the first n bytes of v.
func preview(v []byte, n int) string {
	if len(v) <= n {
		return strconv.Quote(string(v))
	}
	return strconv.Quote(string(v[:n])) + fmt.Sprintf("… (%d bytes)", len(v))
}

func (c *cli) dlqReplay(args []string) error {
	fs := c.flags("dlq replay", "[flags] --partition P --offset N [--value-file fixed.json] [--force]",
		`Re-publishes one dead letter to the commands topic: its original bytes, or the bytes of
--value-file (a fixed version). Bytes that still cannot be identified as a command are refused
(they would only be dead-lettered again) unless --force. The key is the original one (or the fixed
command's out_request_no); the original headers are kept except the intake's error/original_*
ones, and replayed_from=<topic>/<partition>@<offset> is added. Replaying a command that was already
stored is harmless: the intake recognises the same key and parameters as a duplicate. A dead letter
truncated to fit its topic holds only the start of the original: it is replayed only with
--value-file (even --force does not replay the cut bytes).`)
	brokerList := c.setting(fs, "kafka-brokers")
	dlqTopic := c.setting(fs, "dlq-topic")
	cmdTopic := c.setting(fs, "commands-topic")
	partition := fs.Int("partition", -1, "partition of the dead letter (as listed by dlq list); may be left out when the topic has one partition")
	offset := fs.Int64("offset", -1, "offset of the dead letter (as listed by dlq list)")
	valueFile := fs.String("value-file", "", "replay these bytes (a fixed command) instead of the original value")
	force := fs.Bool("force", false, "replay even bytes that do not decode as a command")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("dlq replay: unexpected arguments %v", pos)
	}
	if *offset < 0 {
		fs.Usage()
		return errors.New("dlq replay: --offset is required")
	}
	bl, client, done, err := connect(*brokerList)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ps, err := partitions(ctx, client, *dlqTopic)
	if err != nil {
		return err
	}
	if *partition < 0 {
		if len(ps) != 1 {
			return fmt.Errorf("dlq replay: %s has %d partitions: --partition is required", *dlqTopic, len(ps))
		}
		*partition = ps[0]
	}
	bnd, err := bounds(ctx, client, *dlqTopic, []int{*partition})
	if err != nil {
		return err
	}
	if b := bnd[*partition]; *offset < b[0] || *offset >= b[1] {
		return fmt.Errorf("dlq replay: no dead letter at %s/%d@%d (the partition holds offsets %d to %d)", *dlqTopic, *partition, *offset, b[0], b[1]-1)
	}
	recs, err := fetch(ctx, client, *dlqTopic, *partition, *offset, 100*time.Millisecond)
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].Offset != *offset {
		return fmt.Errorf("dlq replay: no dead letter at %s/%d@%d", *dlqTopic, *partition, *offset)
	}
	dead := recs[0]
	if dead.header("truncated") == "true" && *valueFile == "" {
		return &exitError{2, fmt.Errorf("dlq replay: the dead letter holds only the first %d of %s bytes (original_sha256 %s); the original is at %s/%s@%s: replay a fixed or recovered version with --value-file",
			len(dead.Value), dead.header("original_size"), dead.header("original_sha256"),
			dead.header("original_topic"), dead.header("original_partition"), dead.header("original_offset"))}
	}
	value, key := dead.Value, dead.Key
	if *valueFile != "" {
		if value, err = os.ReadFile(*valueFile); err != nil {
			return err
		}
	}
	cmd, err := withdrawal.Decode(value)
	var und *withdrawal.Undecodable
	var rej *withdrawal.Rejection
	switch {
	case errors.As(err, &und) && !*force:
		return &exitError{2, fmt.Errorf("dlq replay: still not a command (%s); fix it with --value-file, or --force to replay it anyway", und.Reason)}
	case errors.As(err, &und):
		fmt.Fprintf(c.stderr, "warning: replaying bytes that are not a command (%s): --force\n", und.Reason)
	case errors.As(err, &rej):
		fmt.Fprintf(c.stderr, "warning: the command will be rejected (reason_code=%s): %s\n", rej.Code, rej.Reason)
	case err == nil:
		if r := withdrawal.Validate(cmd); r != nil {
			fmt.Fprintf(c.stderr, "warning: the command will be rejected (reason_code=%s): %s\n", r.Code, r.Reason)
		}
	}
	if cmd != nil && *valueFile != "" {
		key = []byte(cmd.OutRequestNo) // the fixed command's key, like upstream's
	}
	var headers []kafka.Header
	for _, h := range dead.Headers {
		if !dlqHeaders[h.Key] {
			headers = append(headers, h)
		}
	}
	from := fmt.Sprintf("%s/%d@%d", *dlqTopic, dead.Partition, dead.Offset)
	headers = append(headers, kafka.Header{Key: "replayed_from", Value: []byte(from)})
	p, off, err := produce(ctx, bl, *cmdTopic, key, value, headers)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "replayed %s to %s partition %d offset %d\n", from, *cmdTopic, p, off)
	return nil
}
