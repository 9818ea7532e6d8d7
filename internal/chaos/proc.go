package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one supervised process of the product (consumer, poller) or the
// sandbox. Its stdout and stderr are appended to one log file across all its
// incarnations. An exit the harness did not cause (a SIGKILL it sent, or
// the SIGTERM at the end) is recorded as unexpected; when Restart is set the
// process is started again after RestartDelay, so that the run goes on, but
// the exit stays counted.
type Proc struct {
	Name         string
	Bin          string
	Args, Env    []string
	LogPath      string
	ReadyMsg     string // msg of the JSON log line that says it serves
	Restart      bool
	RestartDelay time.Duration

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expectExit bool
	stopped    bool
	ready      chan string
	starts     int
	kills      int
	unexpected []Exit
	lastLine   string
	readyAttr  string
}

// Exit is an exit the harness did not cause.
type Exit struct {
	At     time.Time
	Status string // "exit status 1", "signal: killed", ...
	Code   int
	// LastLine is the last thing the process logged (often why it gave up).
	LastLine string
}

// Start starts the process and waits up to timeout for its ready line;
// it returns the ready line's attribute attr (e.g. the address it listens
// on), when attr is not empty.
func (p *Proc) Start(timeout time.Duration, attr string) (string, error) {
	p.mu.Lock()
	p.readyAttr = attr
	err := p.startLocked()
	ready, done := p.ready, p.done
	p.mu.Unlock()
	if err != nil {
		return "", err
	}
	select {
	case v := <-ready:
		return v, nil
	case <-done:
		return "", fmt.Errorf("%s exited before it was ready (see %s): %s", p.Name, p.LogPath, p.LastLine())
	case <-time.After(timeout):
		return "", fmt.Errorf("%s not ready after %s (see %s)", p.Name, timeout, p.LogPath)
	}
}

func (p *Proc) startLocked() error {
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(f, "--- chaos: start #%d of %s at %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = p.Env
	ready := make(chan string, 1)
	lw := &lineWriter{f: f, onLine: func(line []byte) {
		p.mu.Lock()
		p.lastLine = string(line)
		p.mu.Unlock()
		if ready == nil || !bytes.Contains(line, []byte(p.ReadyMsg)) {
			return
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["msg"] == p.ReadyMsg {
			v, _ := rec[p.readyAttr].(string)
			ready <- v
			ready = nil
		}
	}}
	cmd.Stdout, cmd.Stderr = lw, lw
	// Its own process group: a Ctrl-C of the harness must not reach it
	// before the harness has counted what it does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.ready, p.expectExit = cmd, done, ready, false
	go func() {
		err := cmd.Wait()
		lw.flush()
		fmt.Fprintf(f, "--- chaos: %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		close(done)
		if p.expectExit || p.stopped {
			return
		}
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		status := "exit status 0"
		if err != nil {
			status = err.Error()
		}
		p.unexpected = append(p.unexpected, Exit{At: time.Now(), Status: status, Code: code, LastLine: p.lastLine})
		if p.Restart {
			go func() {
				time.Sleep(p.RestartDelay)
				p.mu.Lock()
				defer p.mu.Unlock()
				if !p.stopped && p.cmd == cmd {
					if err := p.startLocked(); err != nil {
						p.unexpected = append(p.unexpected, Exit{At: time.Now(), Status: "restart failed: " + err.Error(), Code: -1})
					}
				}
			}()
		}
	}()
	return nil
}

// Kill SIGKILLs the process (a crash), waits for it and does not restart
// it: Revive does, later.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	select {
	case <-done:
		p.mu.Unlock()
		return fmt.Errorf("%s was not running", p.Name)
	default:
	}
	p.expectExit = true
	p.kills++
	p.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// Revive starts the process again if it is not running (without waiting
// for it to be ready: a dependency may be away).
func (p *Proc) Revive() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		return nil
	}
	if p.stopped {
		return errors.New(p.Name + " is stopped")
	}
	return p.startLocked()
}

// Stop ends supervision: SIGTERM, then SIGKILL after grace. It returns the
// exit status of a process that was running (nil for a clean exit).
func (p *Proc) Stop(grace time.Duration) error {
	p.mu.Lock()
	p.stopped = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			return fmt.Errorf("%s: %s after SIGTERM", p.Name, cmd.ProcessState)
		}
		return nil
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.Name, grace)
	}
}

// Stats are the starts, harness kills and unexpected exits so far.
func (p *Proc) Stats() (starts, kills int, unexpected []Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts, p.kills, append([]Exit(nil), p.unexpected...)
}

// LastLine is the last line the process logged.
func (p *Proc) LastLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastLine
}

// lineWriter copies output to a file and hands every complete line to
// onLine.
type lineWriter struct {
	mu     sync.Mutex
	f      *os.File
	buf    []byte
	onLine func([]byte)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.f.Write(b); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.onLine(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 1<<20 { // a runaway line: keep memory bounded
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.onLine(w.buf)
		w.buf = nil
	}
}

// shortLine trims a log line for the report.
func shortLine(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
