package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/deadletter"
	"github.com/paycore/withdraw/internal/kafkautil"
)

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
	bl, err := brokers(*brokerList)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	letters, _, err := deadletter.Topics{Brokers: bl, DLQ: *topic}.List(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tTIME\tERROR\tFROM\tKEY\tVALUE\tORIGINAL")
	total := 0
	for _, r := range letters {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%q\t%s\t%s\n", r.Partition, r.Offset, r.Time.Local().Format(time.RFC3339),
			r.Error(), r.From(), r.Key, deadletter.Preview(r.Value, *n), r.Original())
		total++
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
	client, done = kafkautil.Client(bl)
	return bl, client, done, nil
}

// topicBounds lists a topic's partitions and, by partition, their first and
// last (next to be written) offsets.
func topicBounds(ctx context.Context, client *kafka.Client, topic string) ([]int, map[int][2]int64, error) {
	ps, err := kafkautil.Partitions(ctx, client, topic)
	if err != nil {
		return nil, nil, err
	}
	bnd, err := kafkautil.Bounds(ctx, client, topic, ps)
	if err != nil {
		return nil, nil, err
	}
	return ps, bnd, nil
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
	bl, err := brokers(*brokerList)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	topics := deadletter.Topics{Brokers: bl, DLQ: *dlqTopic, Commands: *cmdTopic}
	dead, err := topics.Get(ctx, *partition, *offset)
	if err != nil {
		return fmt.Errorf("dlq replay: %w", err)
	}
	var fixed []byte
	if *valueFile != "" {
		if fixed, err = os.ReadFile(*valueFile); err != nil {
			return err
		}
	}
	if dead.Truncated() && fixed == nil {
		_, err := deadletter.Check(dead, nil, *force)
		return &exitError{2, fmt.Errorf("dlq replay: %w: use --value-file", err)}
	}
	res, err := topics.Replay(ctx, dead, fixed, *force)
	var refused *deadletter.Refused
	if errors.As(err, &refused) {
		return &exitError{2, fmt.Errorf("dlq replay: %w (--value-file, or --force to replay it anyway)", err)}
	}
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(c.stdout, "replayed %s to %s partition %d offset %d\n", res.From, res.Topic, res.Partition, res.Offset)
	return nil
}
