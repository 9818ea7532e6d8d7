package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/findcoordinator"
	"github.com/segmentio/kafka-go/protocol/metadata"
)

// Proxy is a TCP forwarder on 127.0.0.1 in front of a real server. Cut
// makes the server unreachable for whoever goes through the proxy (the
// listener closes, so new connections are refused, and every open
// connection is closed); Restore brings it back on the same address. Outage
// tests point a process at the proxy instead of stopping the shared server.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	// pipe, when set, copies one connection's traffic both ways instead of
	// passing the bytes through, until either side fails (NewKafkaProxy).
	pipe func(client, server net.Conn)

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on a free port of
// 127.0.0.1, up; it is shut when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return newProxy(t, target, nil)
}

func newProxy(t testing.TB, target string, pipe func(client, server net.Conn)) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy listen: %v", err)
	}
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), pipe: pipe, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// NewDownProxy is NewProxy, cut from the start: the server is unreachable
// until Restore.
func NewDownProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := NewProxy(t, target)
	p.Cut()
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes the listener and every open connection. Cutting a cut proxy
// is a no-op.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore listens again on the proxy's address. Restoring an open proxy is
// a no-op.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; the kernel may still be letting go.
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("testenv: proxy relisten on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(ln, c)
			}()
		}
	}()
}

// track registers c as open, unless the listener it came from is closed
// (the proxy was cut meanwhile).
func (p *Proxy) track(ln net.Listener, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) forward(ln net.Listener, client net.Conn) {
	if !p.track(ln, client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(ln, server) {
		server.Close()
		return
	}
	defer p.untrack(server)
	if p.pipe != nil {
		p.pipe(client, server)
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(server, client)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, server)
		done <- struct{}{}
	}()
	<-done // either side ended: close both (deferred), which ends the other
}

// NewKafkaProxy is a Proxy in front of a single Kafka broker. A plain TCP
// proxy is not enough for Kafka: a client asks the bootstrap address for
// metadata and then connects to the broker's advertised address, around
// the proxy. This one rewrites the broker addresses of the metadata and
// find-coordinator answers to its own, so that every connection of a client
// bootstrapped through it goes through it too. It understands the protocol
// versions kafka-go speaks.
func NewKafkaProxy(t testing.TB, broker string) *Proxy {
	t.Helper()
	return newProxy(t, broker, func(client, server net.Conn) {
		k := &kafkaConn{pending: map[int32][2]int16{}}
		done := make(chan struct{}, 2)
		go func() {
			_ = k.requests(client, server)
			done <- struct{}{}
		}()
		go func() {
			// The proxy's own address is the one the client dialled.
			_ = k.responses(server, client, client.LocalAddr().String())
			done <- struct{}{}
		}()
		<-done
	})
}

// NewDownKafkaProxy is NewKafkaProxy, cut from the start.
func NewDownKafkaProxy(t testing.TB, broker string) *Proxy {
	t.Helper()
	p := NewKafkaProxy(t, broker)
	p.Cut()
	return p
}

// kafkaConn is one proxied Kafka connection: the requests seen and not yet
// answered, by correlation id.
type kafkaConn struct {
	mu      sync.Mutex
	pending map[int32][2]int16 // correlation id → api key, api version
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, fmt.Errorf("kafka frame of %d bytes", n)
	}
	frame := make([]byte, 4+n)
	copy(frame, size[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// requests copies requests from client to server, noting each header.
func (k *kafkaConn) requests(client, server net.Conn) error {
	for {
		frame, err := readFrame(client)
		if err != nil {
			return err
		}
		if len(frame) >= 12 {
			key := int16(binary.BigEndian.Uint16(frame[4:6]))
			version := int16(binary.BigEndian.Uint16(frame[6:8]))
			corr := int32(binary.BigEndian.Uint32(frame[8:12]))
			k.mu.Lock()
			k.pending[corr] = [2]int16{key, version}
			k.mu.Unlock()
		}
		if _, err := server.Write(frame); err != nil {
			return err
		}
	}
}

// responses copies responses from server to client, with the broker
// addresses of metadata and find-coordinator answers replaced by self.
func (k *kafkaConn) responses(server, client net.Conn, self string) error {
	host, portText, _ := net.SplitHostPort(self)
	port, _ := strconv.Atoi(portText)
	for {
		frame, err := readFrame(server)
		if err != nil {
			return err
		}
		if len(frame) >= 8 {
			corr := int32(binary.BigEndian.Uint32(frame[4:8]))
			k.mu.Lock()
			req, ok := k.pending[corr]
			delete(k.pending, corr)
			k.mu.Unlock()
			if ok {
				frame = rewriteKafka(frame, protocol.ApiKey(req[0]), req[1], host, int32(port))
			}
		}
		if _, err := client.Write(frame); err != nil {
			return err
		}
	}
}

// rewriteKafka returns frame with the broker addresses it carries replaced
// by host:port, or frame itself when it carries none or cannot be decoded.
func rewriteKafka(frame []byte, key protocol.ApiKey, version int16, host string, port int32) []byte {
	if key != protocol.Metadata && key != protocol.FindCoordinator {
		return frame
	}
	corr, msg, err := protocol.ReadResponse(bytes.NewReader(frame), key, version)
	if err != nil {
		return frame
	}
	switch m := msg.(type) {
	case *metadata.Response:
		for i := range m.Brokers {
			m.Brokers[i].Host, m.Brokers[i].Port = host, port
		}
	case *findcoordinator.Response:
		if m.ErrorCode == 0 {
			m.Host, m.Port = host, port
		}
	default:
		return frame
	}
	var out bytes.Buffer
	if err := protocol.WriteResponse(&out, version, corr, msg); err != nil {
		return frame
	}
	return out.Bytes()
}
