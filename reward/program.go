package reward

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"irl/progress"
)

// CmdSource is a reward computed by any program, run as one long-lived
// child process (spec "cmd:PROGRAM ARGS…", split on white space with no
// quoting: put anything more elaborate in a script).
//
// The protocol is JSON lines. For each sample the child reads one line on
// its standard input,
//
//	{"prompt": "...", "response": "...", ...the sample's Fields}
//
// (prompt and response win over fields of the same name) and answers one
// line on its standard output,
//
//	{"reward": 0.25}
//
// in the same order. The child must answer each line as it reads it and
// flush its output (Python: print(json.dumps({"reward": r}), flush=True)):
// its input stays open between batches, so a child that waits for the end
// of its input, or for a full block of it (mawk without -W interactive),
// never answers. Its standard error is kept (the last 8 KiB)
// for error messages.
//
// A child that exits, answers something other than such a line, answers
// a reward that is not a finite number, or takes longer than the timeout
// (Options.Timeout) over an answer — it never answers, answers fewer lines
// than it read, or holds its answers in an output buffer — stops the run
// with an error naming the sample, saying what the child last did and
// carrying the end of its standard error; no score is ever made up.
//
// The child runs in a process group of its own, which is killed whole when
// the source fails or closes, so nothing the child started outlives it.
// Close closes the child's input and waits for it to exit, killing it
// after CloseTimeout. While children live, SIGINT, SIGTERM and SIGHUP kill
// their groups before the signal takes its course (unless
// HandleSignals(false)); and each child gets
// SIGKILL from the kernel if irl dies any other way (Pdeathsig: after a
// SIGKILL of irl the child dies, but what the child started is out of
// reach). A CmdSource is not safe for concurrent use.
type CmdSource struct {
	argv    []string
	cmd     *exec.Cmd
	pgid    int
	timeout time.Duration // 0: none
	stdin   io.WriteCloser
	stdout  *os.File
	answers chan answer
	quit    chan struct{}
	stderr  *tailBuffer
	// stderrDone is closed when the child's standard error has ended.
	stderrDone chan struct{}
	exited     chan struct{}
	waitErr    error // set before exited is closed
	started    time.Time
	// lastAnswer is when the child last answered (zero: never).
	lastAnswer time.Time
	failed     error
	closed     bool
	progress   io.Writer
}

// CloseTimeout is how long Close waits for the child to exit once its input
// is closed, before killing it.
var CloseTimeout = 5 * time.Second

// exitGrace is how long answers a dead child wrote are waited for, and how
// long its exit is waited for once its output has ended.
const exitGrace = 2 * time.Second

// maxAnswerBytes bounds an answer line; a longer one is garbage.
const maxAnswerBytes = 1 << 20

// stderrTail is how much of the child's standard error is kept.
const stderrTail = 8 << 10

type answer struct {
	line []byte
	err  error
}

// StartCmd starts argv as a reward child, with o's Timeout and Progress
// (a progress bar for each batch).
func StartCmd(argv []string, o Options) (*CmdSource, error) {
	if len(argv) == 0 {
		return nil, errors.New("cmd reward: no program")
	}
	// The child's output and error are *os.File pipes of our own, so that
	// exec.Cmd.Wait returns as soon as the child exits — not when whatever
	// it started closes them too — and does not close them under the
	// readers.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	closeAll := func() {
		for _, f := range []*os.File{pr, pw, er, ew} {
			f.Close()
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = pw, ew
	// Its own process group, so that it and all it starts can be killed
	// together; SIGKILL when irl dies, whatever kills irl.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := startFromLockedThread(cmd); err != nil {
		closeAll()
		return nil, fmt.Errorf("cmd reward: starting %s: %w", argv[0], err)
	}
	pw.Close()
	ew.Close()
	s := &CmdSource{
		argv: argv, cmd: cmd, pgid: cmd.Process.Pid, timeout: o.timeout(), stdin: stdin, stdout: pr, answers: make(chan answer, 256),
		quit: make(chan struct{}), stderr: &tailBuffer{max: stderrTail}, stderrDone: make(chan struct{}),
		exited: make(chan struct{}), started: time.Now(), progress: o.Progress,
	}
	liveGroups.add(s.pgid)
	go func() {
		io.Copy(s.stderr, er)
		er.Close()
		close(s.stderrDone)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	go s.read()
	return s, nil
}

// spawner starts children from one goroutine locked to its OS thread for
// the life of the process. Pdeathsig fires when the thread that forked a
// child exits, not the process; Go ends threads at will (a goroutine that
// exits while locked takes its thread with it), so a child forked from an
// ordinary goroutine could get SIGKILL while irl still runs.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func startFromLockedThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			// Never unlocked, never returning: the thread lives as long
			// as the process.
			runtime.LockOSThread()
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd, done}
	return <-done
}

// liveGroups are the process groups of the children alive now. While
// there are any, and unless HandleSignals(false), a handler for SIGINT,
// SIGTERM and SIGHUP kills them all and then lets the signal end irl, as it
// would have without the handler.
var liveGroups = &groupSet{groups: map[int]bool{}}

// HandleSignals turns on (the default) or off the handler that, while
// reward children live, kills their process groups on SIGINT, SIGTERM or
// SIGHUP and then lets the signal end the process. A program that handles
// those signals itself — to stop at a safe point, as the irl command does —
// turns it off and calls KillChildren on its way out when it exits at once;
// children still die on Close, and by Pdeathsig when the process dies.
func HandleSignals(on bool) {
	liveGroups.mu.Lock()
	defer liveGroups.mu.Unlock()
	liveGroups.off = !on
	liveGroups.sync()
}

// KillChildren kills the process group of every reward child alive now:
// for a program about to exit without closing its sources.
func KillChildren() {
	liveGroups.mu.Lock()
	defer liveGroups.mu.Unlock()
	for pgid := range liveGroups.groups {
		killGroup(pgid)
	}
}

type groupSet struct {
	mu     sync.Mutex
	groups map[int]bool
	off    bool           // HandleSignals(false)
	sigs   chan os.Signal // nil while no handler is installed
	stop   chan struct{}
}

func (g *groupSet) add(pgid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups[pgid] = true
	g.sync()
}

func (g *groupSet) remove(pgid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.groups[pgid] {
		return
	}
	delete(g.groups, pgid)
	g.sync()
}

// sync installs the handler while children live and it is on, and removes
// it otherwise. g.mu is held.
func (g *groupSet) sync() {
	want := len(g.groups) > 0 && !g.off
	switch {
	case want && g.sigs == nil:
		g.sigs, g.stop = make(chan os.Signal, 1), make(chan struct{})
		// A signal irl was started ignoring (nohup's SIGHUP, SIGINT in a
		// background job) stays ignored: Notify would undo that.
		for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
			if !signal.Ignored(sig) {
				signal.Notify(g.sigs, sig)
			}
		}
		go g.watch(g.sigs, g.stop)
	case !want && g.sigs != nil:
		signal.Stop(g.sigs)
		close(g.stop)
		g.sigs, g.stop = nil, nil
	}
}

func (g *groupSet) watch(sigs chan os.Signal, stop chan struct{}) {
	select {
	case sig := <-sigs:
		g.mu.Lock()
		for pgid := range g.groups {
			killGroup(pgid)
		}
		g.mu.Unlock()
		// Without a handler left, the signal does what it does to any Go
		// program: end it.
		signal.Stop(sigs)
		if s, ok := sig.(syscall.Signal); ok {
			syscall.Kill(os.Getpid(), s)
		}
	case <-stop:
	}
}

// killGroup sends SIGKILL to a child's process group: the child and all
// it started that stayed in its group.
func killGroup(pgid int) {
	if pgid > 0 {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// read passes the child's output lines to answers until it ends.
func (s *CmdSource) read() {
	br := bufio.NewReaderSize(s.stdout, 64<<10)
	for {
		line, err := readAnswer(br)
		select {
		case s.answers <- answer{line, err}:
		case <-s.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// readAnswer reads one line (without its line ending). A last line without
// a newline is still a line; io.EOF comes after it.
func readAnswer(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxAnswerBytes+2 {
			return nil, fmt.Errorf("an answer line is longer than %d bytes", maxAnswerBytes)
		}
		line = append(line, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		case err != nil:
			return nil, err
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), nil
	}
}

// errNoAnswer is next's answer when the timeout passed first.
var errNoAnswer = errors.New("no answer")

// next returns the child's next answer, or an error once it has died or
// closed its output with nothing more to say, or errNoAnswer when the
// timeout passes first.
func (s *CmdSource) next() answer {
	var timeout <-chan time.Time
	if s.timeout > 0 {
		t := time.NewTimer(s.timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case a := <-s.answers:
		return a
	case <-timeout:
		return answer{err: errNoAnswer}
	case <-s.exited:
		// What the child wrote before exiting is still in the pipe.
		select {
		case a := <-s.answers:
			return a
		case <-time.After(exitGrace):
			return answer{err: io.EOF}
		}
	}
}

// Score sends each sample to the child and reads its rewards.
func (s *CmdSource) Score(samples []Sample) ([]float64, error) {
	switch {
	case s.failed != nil:
		return nil, s.failed
	case s.closed:
		return nil, errors.New("cmd reward: Score after Close")
	case len(samples) == 0:
		return []float64{}, nil
	}
	if bad := needText("cmd", samples); bad != nil {
		return nil, bad[0]
	}
	var buf bytes.Buffer
	for i, smp := range samples {
		if err := writeSampleLine(&buf, smp); err != nil {
			return nil, sampleError("cmd", samples, i, err)
		}
	}
	// The batch is written while answers are read: a child that answers as
	// it reads would otherwise fill its output pipe while this process is
	// still blocked writing its input.
	wrote := make(chan error, 1)
	var wroteAll atomic.Bool
	go func() {
		_, err := s.stdin.Write(buf.Bytes())
		wroteAll.Store(err == nil)
		wrote <- err
	}()
	bar := progress.New(s.progress, len(samples), "cmd reward", "rows")
	out := make([]float64, len(samples))
	for i := range samples {
		a := s.next()
		if a.err == errNoAnswer {
			return nil, s.fail(samples, i, s.silence(i, len(samples), wroteAll.Load()))
		}
		if a.err != nil {
			return nil, s.fail(samples, i, s.deathCause(a.err))
		}
		s.lastAnswer = time.Now()
		v, err := parseAnswer(a.line)
		if err != nil {
			return nil, s.fail(samples, i, err)
		}
		out[i] = v
		bar.Add(1)
	}
	// Every answer came, so the child has read the whole batch; had it
	// exited, Wait has closed its input and the write has ended.
	if err := <-wrote; err != nil {
		return nil, s.fail(samples, len(samples)-1, fmt.Errorf("writing the batch to the child: %w", err))
	}
	bar.Finish()
	// Lines beyond the batch would be taken as the next batch's answers.
	// Only those already read can be caught; the protocol has no way to
	// tell a late extra line from the next batch's first answer.
	select {
	case a := <-s.answers:
		if a.err == nil {
			return nil, s.fail(samples, len(samples)-1, fmt.Errorf("the child answered more lines than it was given (extra line %s)", quoteLine(a.line)))
		}
		s.answers <- a // the end of the output: the next call reports it
	default:
	}
	return out, nil
}

// deathCause describes why no answer came: the child's exit status, or its
// closed output.
func (s *CmdSource) deathCause(err error) error {
	if err != io.EOF {
		return fmt.Errorf("reading the child's answer: %w", err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("the child died before answering (%v)", s.waitErr)
		}
		return errors.New("the child exited (status 0) before answering")
	case <-time.After(exitGrace):
		return errors.New("the child closed its output before answering")
	}
}

// silence describes a child that let the timeout pass without answering
// line i of a batch of n: how far it got, when it last answered, whether it
// took all its input, and the usual causes.
func (s *CmdSource) silence(i, n int, readAll bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "no answer within %v (reward_timeout): the child answered %d of the batch's %d lines", s.timeout, i, n)
	switch {
	case i > 0:
		fmt.Fprintf(&b, ", the last %v ago", time.Since(s.lastAnswer).Round(time.Millisecond))
	case s.lastAnswer.IsZero():
		fmt.Fprintf(&b, ", none since it started %v ago", time.Since(s.started).Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, ", none since its last answer to the previous batch %v ago", time.Since(s.lastAnswer).Round(time.Millisecond))
	}
	// A pipe's buffer takes a small batch whether the child reads or not,
	// so only a batch that did not fit says the child stopped reading.
	if readAll {
		b.WriteString("; the whole batch went into its input")
	} else {
		b.WriteString("; it stopped reading its input before the end of the batch")
	}
	b.WriteString(". A child must answer every line as it reads it and flush each answer (Python: print(..., flush=True)): answers held in an output buffer, or fewer answers than lines, never arrive")
	return errors.New(b.String())
}

// fail stops the child and all it started, so that nothing more is read
// from it, and returns the error for samples[i] with the end of the
// child's standard error.
func (s *CmdSource) fail(samples []Sample, i int, cause error) error {
	s.end()
	s.failed = sampleError("cmd", samples, i, fmt.Errorf("%s: %w%s", strings.Join(s.argv, " "), cause, s.stderrNote()))
	return s.failed
}

// end kills the child's process group and waits for the child and for the
// end of its standard error (which then holds all it wrote), each at most
// exitGrace.
func (s *CmdSource) end() {
	killGroup(s.pgid)
	select {
	case <-s.exited:
	case <-time.After(exitGrace):
	}
	select {
	case <-s.stderrDone:
	case <-time.After(exitGrace):
	}
	liveGroups.remove(s.pgid)
}

func (s *CmdSource) stderrNote() string {
	t := s.stderr.String()
	if strings.TrimSpace(t) == "" {
		return " (the child wrote nothing to stderr)"
	}
	return "; the child's stderr ends:\n\t" + strings.ReplaceAll(strings.TrimRight(t, "\n"), "\n", "\n\t")
}

// writeSampleLine writes {"prompt", "response", …Fields} and a newline.
func writeSampleLine(w *bytes.Buffer, s Sample) error {
	m := make(map[string]any, len(s.Fields)+2)
	for k, v := range s.Fields {
		m[k] = v
	}
	m["prompt"], m["response"] = s.Prompt, s.Response
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("cannot write it as JSON: %w", err)
	}
	return nil
}

// nonFinite finds the non-finite numbers other languages write into JSON
// (Python's NaN and Infinity), which are not JSON, to say what they are.
var nonFinite = regexp.MustCompile(`(?i)"reward"\s*:\s*"?([+-]?(?:nan|inf(?:inity)?))"?`)

// parseAnswer reads {"reward": x} with x a finite number.
func parseAnswer(line []byte) (float64, error) {
	if m := nonFinite.FindSubmatch(line); m != nil {
		return 0, fmt.Errorf("the child answered reward %s; rewards must be finite", m[1])
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil || obj == nil {
		return 0, fmt.Errorf("the child answered %s, not a JSON object {\"reward\": x}", quoteLine(line))
	}
	raw, ok := obj["reward"]
	if !ok {
		return 0, fmt.Errorf("the child answered %s, which has no \"reward\"", quoteLine(line))
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, fmt.Errorf("the child answered %s: \"reward\" is not a number", quoteLine(line))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("the child answered reward %s, beyond float64; rewards must be finite", raw)
	}
	return v, nil
}

// quoteLine quotes an answer for a message, shortened.
func quoteLine(line []byte) string {
	const keep = 200
	if len(line) > keep {
		return strconv.Quote(string(line[:keep])) + "…"
	}
	return strconv.Quote(string(line))
}

// Describe names the program.
func (s *CmdSource) Describe() map[string]string {
	return map[string]string{"kind": "cmd", "command": strings.Join(s.argv, " ")}
}

// Validate returns the samples that carry only token ids.
func (s *CmdSource) Validate(samples []Sample) []*SampleError { return needText("cmd", samples) }

// Close closes the child's input and waits for it to exit, killing it after
// CloseTimeout; then it kills whatever the child started and left running.
// It reports a child that exits with an error or has to be killed, unless
// a Score has already reported its failure.
func (s *CmdSource) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.stdin.Close()
	killed := false
	select {
	case <-s.exited:
	case <-time.After(CloseTimeout):
		killed = true
	}
	s.end()
	var err error
	switch {
	case s.failed != nil:
	case killed:
		err = fmt.Errorf("cmd reward %s: the child was still running %v after its input closed; killed", strings.Join(s.argv, " "), CloseTimeout)
	case s.waitErr != nil:
		err = fmt.Errorf("cmd reward %s: the child failed after its input closed (%v)%s", strings.Join(s.argv, " "), s.waitErr, s.stderrNote())
	}
	close(s.quit)
	s.stdout.Close()
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
