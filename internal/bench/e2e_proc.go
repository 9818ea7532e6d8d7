package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildBinaries builds cmd/consumer and cmd/sandbox (without -race, as
// deployed) into dir and returns their paths. It must run inside the
// module.
func BuildBinaries(ctx context.Context, dir string) (consumer, sandbox string, err error) {
	consumer, sandbox = filepath.Join(dir, "consumer"), filepath.Join(dir, "sandbox")
	for bin, pkg := range map[string]string{consumer: "github.com/paycore/withdraw/cmd/consumer", sandbox: "github.com/paycore/withdraw/cmd/sandbox"} {
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return consumer, sandbox, nil
}

// proc is one process of the product, started by the harness, with the
// tail of its (JSON) log.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu   sync.Mutex
	logs []string // the last logTail lines of stderr
	errs []string // the first lines logged at level ERROR
	nErr int

	exited chan struct{}
	err    error // of Wait, once exited is closed
}

const logTail = 80

// startProc runs bin and waits until a JSON log line has msg == readyMsg;
// it returns the value of the attribute readyAttr of that line.
func startProc(name, bin string, args, env []string, readyMsg, readyAttr string, timeout time.Duration) (*proc, string, error) {
	p := &proc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	p.cmd.Stdout = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if strings.Contains(line, `"level":"ERROR"`) {
				p.nErr++
				if len(p.errs) < 5 {
					p.errs = append(p.errs, line)
				}
			}
			p.logs = append(p.logs, line)
			if len(p.logs) > 2*logTail {
				p.logs = append(p.logs[:0], p.logs[len(p.logs)-logTail:]...)
			}
			p.mu.Unlock()
			if sent {
				continue
			}
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == readyMsg {
				v, _ := rec[readyAttr].(string)
				ready <- v
				sent = true
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case v := <-ready:
		return p, v, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("%s exited before it was ready: %v\n%s", name, p.err, p.tail())
	case <-time.After(timeout):
		p.kill()
		return nil, "", fmt.Errorf("%s not ready after %s\n%s", name, timeout, p.tail())
	}
}

// alive reports an error if the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited during the run: %v\n%s", p.name, p.err, p.tail())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit (status 0).
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v\n%s", p.name, p.err, p.tail())
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s exit after SIGTERM: %v\n%s", p.name, p.err, p.tail())
		}
		return nil
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM\n%s", p.name, grace, p.tail())
	}
}

// kill ends the process (if still running) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.logs
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	if len(lines) == 0 {
		return "(" + p.name + ": no log)"
	}
	return p.name + " log tail:\n  " + strings.Join(lines, "\n  ")
}

// errorLines is the number of lines logged at level ERROR and the first
// of them (a clean run logs none).
func (p *proc) errorLines() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nErr, append([]string(nil), p.errs...)
}

var errStalled = errors.New("no progress")
