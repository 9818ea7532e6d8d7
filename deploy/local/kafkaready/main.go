// Command kafkaready waits until a Kafka broker answers metadata requests.
//
// deploy/local/env.sh runs it after the broker's port opens: an open port is
// not enough, because a KRaft node accepts connections before its controller
// has elected itself and the broker has registered. We wait until a metadata
// request lists at least one broker and a controller.
//
//	kafkaready -brokers 127.0.0.1:19092 -timeout 60s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "comma-separated broker addresses")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var lastErr error
	for {
		for _, addr := range strings.Split(*brokers, ",") {
			desc, err := probe(ctx, strings.TrimSpace(addr))
			if err == nil {
				fmt.Println(desc)
				return
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "kafkaready: broker not ready after %s: %v\n", *timeout, lastErr)
			os.Exit(1)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probe does one metadata round trip and describes what it saw.
func probe(ctx context.Context, addr string) (string, error) {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := (&kafka.Dialer{Timeout: 3 * time.Second}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))

	brokers, err := conn.Brokers()
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if len(brokers) == 0 {
		return "", errors.New("metadata lists no brokers yet")
	}
	ctrl, err := conn.Controller()
	if err != nil {
		return "", fmt.Errorf("controller: %w", err)
	}
	if ctrl.ID < 0 {
		return "", errors.New("no controller yet")
	}
	return fmt.Sprintf("%d broker(s), controller node %d at %s:%d", len(brokers), ctrl.ID, ctrl.Host, ctrl.Port), nil
}
