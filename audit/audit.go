package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"irl/atomicfile"

	"irl/features"
	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/progress"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

// Config configures an audit.
type Config struct {
	// Model is the tuned model and Base the model it was tuned from
	// (Hugging Face folders or run folders); or Pos and Neg, row files of
	// the tuned and the base model's outputs, with PromptField and
	// TextField columns. Prompts is the prompt rows (PromptField) with
	// Model and Base.
	Model, Base, Prompts string
	Pos, Neg             string
	// PromptField and TextField name the columns ("prompt", "text").
	PromptField, TextField string
	// Encoder is the frozen model whose hidden states are the features:
	// Base by default; required with Pos and Neg.
	Encoder string
	// ProbeWords is a file of words, one a line, scored instead of the
	// tokenizer's whole words; Templates a file of templates, one a line,
	// each with {} for the word, instead of DefaultTemplates.
	ProbeWords, Templates string
	// Seed splits the prompts and seeds sampling and training.
	Seed uint64
	// HeldOut is the share of prompts held out (0: 0.3).
	HeldOut float64
	// Greedy decodes one continuation a prompt from each model, the
	// models' modes, instead of sampling Samples of them (temperature 1);
	// MaxNewTokens bounds them (0: 32, or fewer where the models'
	// positions after the longest prompt are fewer).
	//
	// Sampling is the default: greedy decoding shows each model's one
	// most likely text, so the word lists see only the words the modes
	// use (in the toy world, 37 of the 50 non-toxic adjectives), and a
	// real model's greedy text often loops. Samples show what a policy
	// favours, which is what its reward shaped.
	Greedy       bool
	MaxNewTokens int
	// Samples is how many continuations each model writes after each
	// prompt when sampling (0: 4).
	Samples int
	// Epochs of IRL training (0: rewardhead.DefaultTrainConfig's).
	Epochs int
	// Top is how many words each list holds (0: 30).
	Top int
	// GT is a file of ground-truth scores for the demonstrations' texts:
	// rows with TextField, GTField (0: "reward", what irl score writes)
	// and, optionally, PromptField. With it the report compares the head
	// with a probe of those scores (Report.Direction).
	GT, GTField string
	// Out is the report's folder; Overwrite lets the audit replace what
	// an earlier run left there.
	Out       string
	Overwrite bool
	Session   onnx.Options
	Progress  io.Writer
	Quiet     bool
	Context   context.Context
	// StopAfter, for tests, ends the run after the named stage as a kill
	// there would: the next run with the same inputs resumes after it.
	StopAfter string
}

// DefaultTemplates are the neutral sentences a word is scored in.
var DefaultTemplates = []string{"The {} is", "It was {}.", "It is {}.", "This is {}."}

// Variants are the feature choices compared, the same nine as
// experiments/toy's: the last token, the one before it and the mean, each at
// the last layer, the first layer and the embeddings.
var Variants = []struct {
	Pool  neox.Pooling
	Layer int
}{{"last", -1}, {"last:2", -1}, {"mean", -1}, {"last", 1}, {"last:2", 1}, {"mean", 1}, {"last", 0}, {"last:2", 0}, {"mean", 0}}

// samples is how many continuations a model writes after a prompt.
func (c Config) samples() int {
	if c.Greedy {
		return 1
	}
	if c.Samples > 0 {
		return c.Samples
	}
	return 4
}

// minPerSide is the fewest texts (or prompts) an audit takes: two to
// train on and two held out.
const minPerSide = 4

// pair is one prompt's demonstrations: what the tuned model (pos) and the
// base model (neg) wrote after it.
type demo struct {
	Prompt string `json:"prompt"`
	Text   string `json:"text"`
	// Source is "tuned" or "base".
	Source string `json:"source"`
	// Group is the prompt's index: texts of one group are paired.
	Group int  `json:"group"`
	Train bool `json:"train"`
}

type auditor struct {
	cfg     Config
	encoder *neox.Source
	tokPath string
	words   []string
	temps   []string
	demos   []demo
	rep     *Report
	sc      *scored
	// gt is Config.GT read, gtScores each demonstration's score by prompt
	// and text.
	gt       *gtTable
	gtScores map[[2]string]float64
	// fingerprints are the tuned and base models', which the stage log's
	// key covers.
	fingerprints []string
	// words0 caches written().
	words0 map[string]bool
}

func (a *auditor) logf(format string, args ...any) {
	if a.cfg.Progress != nil {
		fmt.Fprintf(a.cfg.Progress, "[audit] %s\n", fmt.Sprintf(format, args...))
	}
}

func (a *auditor) bars() io.Writer {
	if a.cfg.Quiet {
		return nil
	}
	return a.cfg.Progress
}

func (a *auditor) path(parts ...string) string {
	return filepath.Join(append([]string{a.cfg.Out}, parts...)...)
}

// Run runs the audit and writes OUT/report.json, OUT/report.md and
// OUT/report.html. Bad input is refused before anything is written (a
// --gt file missing generated texts can only be found out once they are).
func Run(cfg Config) (*Report, error) {
	if cfg.PromptField == "" {
		cfg.PromptField = "prompt"
	}
	if cfg.TextField == "" {
		cfg.TextField = "text"
	}
	if cfg.HeldOut == 0 {
		cfg.HeldOut = 0.3
	}
	if cfg.Top == 0 {
		cfg.Top = 30
	}
	if cfg.GTField == "" {
		cfg.GTField = "reward"
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if !(cfg.HeldOut > 0 && cfg.HeldOut < 1) {
		return nil, fmt.Errorf("audit: held-out share %v, want in (0, 1)", cfg.HeldOut)
	}
	if cfg.MaxNewTokens < 0 || cfg.Epochs < 0 || cfg.Top < 0 {
		return nil, errors.New("audit: max new tokens, epochs and top must be positive")
	}
	models := cfg.Model != "" || cfg.Base != "" || cfg.Prompts != ""
	outputs := cfg.Pos != "" || cfg.Neg != ""
	switch {
	case models && outputs:
		return nil, errors.New("audit: give either --model, --base and --prompts, or --pos and --neg, not both")
	case models && (cfg.Model == "" || cfg.Base == "" || cfg.Prompts == ""):
		return nil, errors.New("audit: --model, --base and --prompts go together: give all three")
	case outputs && (cfg.Pos == "" || cfg.Neg == ""):
		return nil, errors.New("audit: --pos and --neg go together: give both")
	case !models && !outputs:
		return nil, errors.New("audit: give --model, --base and --prompts, or --pos and --neg")
	case outputs && cfg.Encoder == "":
		return nil, errors.New("audit: with --pos and --neg, give --encoder (the frozen model whose hidden states are the features)")
	}
	if cfg.Encoder == "" {
		cfg.Encoder = cfg.Base
	}
	a := &auditor{cfg: cfg, rep: &Report{Seed: cfg.Seed, Model: cfg.Model, Base: cfg.Base, Prompts: cfg.Prompts, Pos: cfg.Pos, Neg: cfg.Neg,
		NotDone: []string{}}}
	// Everything is read and checked before the folder is touched.
	var err error
	if a.encoder, err = neox.Open(cfg.Encoder); err != nil {
		return nil, fmt.Errorf("audit: encoder: %w", err)
	}
	a.rep.Encoder = a.encoder.Path
	a.tokPath = a.encoder.TokenizerPath("")
	enc, err := tokenizer.Load(a.tokPath)
	if err != nil {
		return nil, fmt.Errorf("audit: the encoder's tokenizer: %w", err)
	}
	if a.temps, err = loadTemplates(cfg.Templates); err != nil {
		return nil, err
	}
	if a.words, err = loadWords(cfg.ProbeWords, enc); err != nil {
		return nil, err
	}
	if cfg.GT != "" {
		if a.gt, err = readGT(cfg.GT, cfg.GTField, cfg.TextField, cfg.PromptField); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	var gen func() error
	if models {
		gen, err = a.prepareModels()
	} else if err = a.readOutputs(); err == nil && a.gt != nil {
		err = a.matchGT()
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	key, err := a.key(a.fingerprints...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	// An audit of the same inputs that stopped part way resumes after its
	// last finished stage; anything else in the folder needs --overwrite.
	var done []string
	if !cfg.Overwrite {
		done = a.resumable(key)
	}
	if done == nil {
		if err := atomicfile.CheckDir(cfg.Out, cfg.Overwrite); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	lock, err := atomicfile.LockDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer lock.Release()
	if done == nil && cfg.Overwrite {
		if err := atomicfile.ClearDir(cfg.Out); err != nil {
			return nil, err
		}
	}
	stages := []struct {
		name string
		fn   func() (string, error)
	}{
		{"demonstrations", func() (string, error) {
			if gen != nil {
				if err := gen(); err != nil {
					return "", err
				}
			}
			msg, err := a.writeDemos()
			// The generated texts' scores are checked here, before the
			// long stages, with the texts on disk to score.
			if err == nil && gen != nil && a.gt != nil {
				err = a.matchGT()
			}
			return msg, err
		}},
		{"features", a.stageFeatures},
		{"irl", a.stageIRL},
		{"reliability", a.stageReliability},
		{"reasons", a.stageReasons},
	}
	if a.gt != nil {
		stages = append(stages, struct {
			name string
			fn   func() (string, error)
		}{"direction", a.stageDirection})
	}
	if a.rep.Seconds == nil {
		a.rep.Seconds = map[string]float64{}
	}
	for i, st := range stages {
		if doneAlready(done, st.name) {
			if err := a.reload(st.name); err != nil {
				return nil, fmt.Errorf("audit: resuming after %s: %w (rerun with --overwrite to start over)", st.name, err)
			}
			a.logf("stage %d/%d %s: done by an earlier run of this audit, kept", i+1, len(stages), st.name)
			continue
		}
		if err := cfg.Context.Err(); err != nil {
			return nil, fmt.Errorf("audit: interrupted before %s (rerun the same command to resume): %w", st.name, err)
		}
		t0 := time.Now()
		a.logf("stage %d/%d %s …", i+1, len(stages), st.name)
		msg, err := st.fn()
		if err != nil && errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("audit: interrupted in stage %s (rerun the same command to resume after %s): %w", st.name, strings.Join(append([]string{"the start"}, done...)[len(done):], ""), err)
		}
		if err != nil {
			return nil, fmt.Errorf("audit: %s: %w", st.name, err)
		}
		a.rep.Seconds[st.name] = time.Since(t0).Seconds()
		done = append(done, st.name)
		if err := a.finished(key, done); err != nil {
			return nil, err
		}
		a.logf("stage %d/%d %s done in %.1fs: %s", i+1, len(stages), st.name, a.rep.Seconds[st.name], msg)
		if st.name == cfg.StopAfter {
			return nil, fmt.Errorf("audit: %w %s", errStopped, st.name)
		}
	}
	if err := a.rep.write(cfg.Out); err != nil {
		return nil, err
	}
	return a.rep, nil
}

// loadTemplates reads a templates file, or gives DefaultTemplates.
func loadTemplates(path string) ([]string, error) {
	if path == "" {
		return DefaultTemplates, nil
	}
	lines, err := readLines(path)
	if err != nil {
		return nil, fmt.Errorf("audit: --templates: %w", err)
	}
	for i, l := range lines {
		if strings.Count(l, "{}") != 1 {
			return nil, fmt.Errorf("audit: --templates %s: template %d, %q, needs exactly one {} for the word", path, i+1, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("audit: --templates %s holds no templates", path)
	}
	return lines, nil
}

// readLines reads the non-empty lines of a file, without # comments.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// loadWords reads --probe-words, or lists the tokenizer's whole words:
// the entries that decode to an optional space and two or more letters,
// and that the tokenizer encodes after a space as that one entry.
func loadWords(path string, tok *tokenizer.Tokenizer) ([]string, error) {
	if path != "" {
		ws, err := readLines(path)
		if err != nil {
			return nil, fmt.Errorf("audit: --probe-words: %w", err)
		}
		if len(ws) < 2 {
			return nil, fmt.Errorf("audit: --probe-words %s: %d words; give at least 2, one a line", path, len(ws))
		}
		return ws, nil
	}
	ws := VocabularyWords(tok)
	if len(ws) < 2 {
		return nil, fmt.Errorf("audit: the tokenizer has %d whole words; give --probe-words", len(ws))
	}
	return ws, nil
}

// VocabularyWords is every whole word of the tokenizer's vocabulary, in id
// order: an entry that decodes to a space (or nothing) and then two or more
// letters, and that " word" encodes to alone.
func VocabularyWords(tok *tokenizer.Tokenizer) []string {
	seen := map[string]bool{}
	var out []string
	for id := 0; id < tok.VocabSize(); id++ {
		s := tok.Decode([]int64{int64(id)})
		w := strings.TrimPrefix(s, " ")
		if len(w) < 2 || seen[w] || !isWord(w) {
			continue
		}
		if ids := tok.Encode(" " + w); len(ids) != 1 {
			continue
		}
		seen[w] = true
		out = append(out, w)
	}
	return out
}

// isWord: letters, with single hyphens or apostrophes inside
// ("nasty-minded", "don't").
func isWord(w string) bool {
	prev := '-'
	for i, r := range w {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		inner := (r == '-' || r == '\'') && i > 0 && i < len(w)-1 && prev != '-' && prev != '\''
		if !letter && !inner {
			return false
		}
		prev = r
	}
	return true
}

// split assigns groups to training or held out: a share held of n, at
// least one on each side, drawn with the seed.
func split(n int, held float64, seed uint64) []bool {
	train := make([]bool, n)
	perm := rand.New(rand.NewPCG(seed, 0xa0d17)).Perm(n)
	k := int(float64(n)*held + 0.5)
	k = max(1, min(n-1, k))
	for i, p := range perm {
		train[p] = i >= k
	}
	return train
}

// prepareModels checks the models, their tokenizers and the prompts, and
// returns the generation to run once the folder is taken.
func (a *auditor) prepareModels() (func() error, error) {
	c := a.cfg
	tuned, err := neox.Open(c.Model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	base, err := neox.Open(c.Base)
	if err != nil {
		return nil, fmt.Errorf("--base: %w", err)
	}
	a.fingerprints = []string{tuned.Fingerprint, base.Fingerprint}
	if tuned.IsONNX() || base.IsONNX() {
		return nil, errors.New("--model and --base must be model folders (generation builds its own graphs), not .onnx files")
	}
	tt, err := tokenizer.Load(tuned.TokenizerPath(""))
	if err != nil {
		return nil, fmt.Errorf("--model's tokenizer: %w", err)
	}
	bt, err := tokenizer.Load(base.TokenizerPath(""))
	if err != nil {
		return nil, fmt.Errorf("--base's tokenizer: %w", err)
	}
	if why := sameTokenizer(tt, bt); why != "" {
		return nil, fmt.Errorf("--model %s and --base %s have different tokenizers (%s): the two must continue the same prompts token for token", tuned.Path, base.Path, why)
	}
	rs, bad, err := rows.Read(c.Prompts, rows.Options{TextField: c.PromptField})
	if err != nil {
		return nil, fmt.Errorf("--prompts: %w", err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("--prompts %s:%d: %v", c.Prompts, bad[0].Line, bad[0].Err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("--prompts %s holds no rows (a %q column is read)", c.Prompts, c.PromptField)
	}
	if len(rs) < minPerSide {
		return nil, fmt.Errorf("--prompts %s holds %d rows; an audit needs at least %d (some to train on, some held out)", c.Prompts, len(rs), minPerSide)
	}
	for _, r := range rs {
		if r.IDs != nil {
			return nil, fmt.Errorf("--prompts %s:%d: give prompts as text, not input_ids (the report shows them)", c.Prompts, r.Line)
		}
	}
	ids, err := policy.PromptRows(c.Prompts, rs, tt)
	if err != nil {
		return nil, err
	}
	longest := 0
	for _, p := range ids {
		longest = max(longest, len(p))
	}
	room := min(tuned.Config.MaxPositions, base.Config.MaxPositions) - longest
	if c.MaxNewTokens == 0 {
		c.MaxNewTokens = min(32, room)
	}
	if c.MaxNewTokens < 1 || c.MaxNewTokens > room {
		return nil, fmt.Errorf("--prompts %s: the longest prompt has %d tokens, which leaves %d of the models' %d positions for new tokens; want --max-new-tokens from 1 to that",
			c.Prompts, longest, room, min(tuned.Config.MaxPositions, base.Config.MaxPositions))
	}
	train := split(len(rs), c.HeldOut, c.Seed)
	return func() error {
		for _, side := range []struct {
			src  *neox.Source
			name string
		}{{tuned, "tuned"}, {base, "base"}} {
			m, err := side.src.Load()
			if err != nil {
				return err
			}
			g, err := policy.NewGenerator(m, c.Session)
			if err != nil {
				return err
			}
			o := policy.GenerateOptions{MaxNewTokens: c.MaxNewTokens, Seed: c.Seed, BatchSize: 64, Context: c.Context,
				Sampling: policy.SampleOptions{Greedy: c.Greedy, Temperature: 1, TopP: 1}, NumReturnSequences: c.samples()}
			bar := progress.New(a.bars(), len(ids)*c.samples(), "demonstrations ("+side.name+")", "seqs")
			err = g.GenerateRows(c.Prompts, rs, ids, tt, o, func(line policy.RowGeneration) error {
				bar.Add(1)
				i := *line.Row
				a.demos = append(a.demos, demo{Prompt: rs[i].Text, Text: *line.Text, Source: side.name, Group: i, Train: train[i]})
				return nil
			})
			g.Destroy()
			if err != nil {
				return fmt.Errorf("generating with %s: %w", side.src.Path, err)
			}
			bar.Finish()
		}
		return nil
	}, nil
}

// sameTokenizer says how two tokenizers differ, or "".
func sameTokenizer(a, b *tokenizer.Tokenizer) string {
	if a.VocabSize() != b.VocabSize() {
		return fmt.Sprintf("vocabularies of %d and %d entries", a.VocabSize(), b.VocabSize())
	}
	for id := 0; id < a.VocabSize(); id++ {
		x, y := a.Decode([]int64{int64(id)}), b.Decode([]int64{int64(id)})
		if x != y {
			return fmt.Sprintf("id %d is %q in one and %q in the other", id, x, y)
		}
	}
	return ""
}

// readOutputs reads --pos and --neg; texts with the same prompt form a
// group, split together.
func (a *auditor) readOutputs() error {
	c := a.cfg
	groups := map[string]int{}
	var all []demo
	for _, side := range []struct{ path, name, flag string }{{c.Pos, "tuned", "--pos"}, {c.Neg, "base", "--neg"}} {
		rs, bad, err := rows.Read(side.path, rows.Options{TextField: c.TextField, PromptField: c.PromptField})
		if err != nil {
			return fmt.Errorf("%s: %w", side.flag, err)
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s %s:%d: %v", side.flag, side.path, bad[0].Line, bad[0].Err)
		}
		if len(rs) < minPerSide {
			return fmt.Errorf("%s %s holds %d texts; an audit needs at least %d on each side (some to train on, some held out)", side.flag, side.path, len(rs), minPerSide)
		}
		for _, r := range rs {
			if r.IDs != nil {
				return fmt.Errorf("%s %s:%d: give texts, not input_ids", side.flag, side.path, r.Line)
			}
			g, ok := groups[r.Prompt]
			if !ok {
				g = len(groups)
				groups[r.Prompt] = g
			}
			all = append(all, demo{Prompt: r.Prompt, Text: r.Text, Source: side.name, Group: g})
		}
	}
	train := split(len(groups), c.HeldOut, c.Seed)
	for i := range all {
		all[i].Train = train[all[i].Group]
	}
	a.demos = all
	for _, t := range []bool{true, false} {
		var p, n int
		for _, d := range all {
			if d.Train == t && d.Source == "tuned" {
				p++
			} else if d.Train == t {
				n++
			}
		}
		if p == 0 || n == 0 {
			part := map[bool]string{true: "training", false: "held-out"}[t]
			return fmt.Errorf("the %s part has %d --pos and %d --neg texts: with so few prompts shared, give more rows", part, p, n)
		}
	}
	return nil
}

func (a *auditor) writeDemos() (string, error) {
	if err := os.MkdirAll(a.path("demonstrations"), 0o755); err != nil {
		return "", err
	}
	var b []byte
	same, pairs := 0, 0
	byGroup := map[int][]demo{}
	for _, d := range a.demos {
		j, _ := json.Marshal(d)
		b = append(append(b, j...), '\n')
		byGroup[d.Group] = append(byGroup[d.Group], d)
	}
	for _, ds := range byGroup {
		for _, p := range ds {
			for _, n := range ds {
				if p.Source == "tuned" && n.Source == "base" {
					pairs++
					if p.Text == n.Text {
						same++
					}
				}
			}
		}
	}
	if err := atomicfile.WriteBytes(a.path("demonstrations", "demonstrations.jsonl"), b); err != nil {
		return "", err
	}
	left := 0
	for _, s := range sameText(a.demos) {
		if s {
			left++
		}
	}
	a.rep.Demonstrations = DemoSummary{Texts: len(a.demos), Prompts: len(byGroup), Pairs: pairs, Identical: same, LeftOut: left,
		Sampled: a.cfg.Model != "" && !a.cfg.Greedy}
	for _, d := range a.demos {
		if d.Train {
			a.rep.Demonstrations.Train++
		} else {
			a.rep.Demonstrations.HeldOut++
		}
	}
	return fmt.Sprintf("%d texts after %d prompts (%d train, %d held out); %d of %d pairs of texts identical; %d prompts where the two models wrote the same left out (no head can order them)",
		len(a.demos), len(byGroup), a.rep.Demonstrations.Train, a.rep.Demonstrations.HeldOut, same, pairs, left), nil
}

// part selects demonstrations: one side of the training or held-out
// prompts, leaving out prompts where both models wrote the same texts. Such
// a prompt says nothing about what was rewarded: no head can order its two
// sides (it would count as a tie), and max-margin IRL has no margin to make
// on it.
func (a *auditor) part(train bool, source string) []demo {
	same := sameText(a.demos)
	var out []demo
	for _, d := range a.demos {
		if d.Train == train && d.Source == source && !same[d.Group] {
			out = append(out, d)
		}
	}
	return out
}

// sameText is the prompts whose tuned texts and base texts are the same
// (as multisets: with samples, the same texts as often on each side).
func sameText(ds []demo) map[int]bool {
	texts := map[int]map[string][]string{} // prompt → source → texts
	for _, d := range ds {
		if texts[d.Group] == nil {
			texts[d.Group] = map[string][]string{}
		}
		texts[d.Group][d.Source] = append(texts[d.Group][d.Source], d.Text)
	}
	same := map[int]bool{}
	for g, t := range texts {
		p, n := t["tuned"], t["base"]
		slices.Sort(p)
		slices.Sort(n)
		same[g] = len(p) > 0 && slices.Equal(p, n)
	}
	return same
}

func (a *auditor) pipeline(pool neox.Pooling, layer int) (*features.Pipeline, error) {
	return features.NewPipeline(features.PipelineOptions{Model: a.encoder, Tokenizer: a.tokPath, Layer: layer, Pool: pool,
		BatchSize: 64, Session: a.cfg.Session, Context: a.cfg.Context, Progress: a.bars()})
}

// featuresOf extracts the features of demonstrations (prompt + text).
func featuresOf(p *features.Pipeline, name string, ds []demo) (*rewardhead.Features, error) {
	return rowFeatures(p, name, demoRows(ds))
}

// demoRows are demonstrations as rows: prompt and text.
func demoRows(ds []demo) []rows.Row {
	rs := make([]rows.Row, len(ds))
	for i, d := range ds {
		rs[i] = rows.Row{Index: i, Line: i + 1, Prompt: d.Prompt, Text: d.Text}
	}
	return rs
}

func rowFeatures(p *features.Pipeline, name string, rs []rows.Row) (*rewardhead.Features, error) {
	enc, err := p.Encode(name, rs, &rows.Bad{})
	if err != nil {
		return nil, err
	}
	f, _, err := p.Features(name, enc, 0)
	return f, err
}

func (a *auditor) trainConfig(seed uint64) rewardhead.TrainConfig {
	tc := rewardhead.DefaultTrainConfig()
	tc.Seed = seed
	if a.cfg.Epochs > 0 {
		tc.Epochs = a.cfg.Epochs
	}
	return tc
}

// VariantResult is one feature choice's training pair accuracy.
type VariantResult struct {
	Pool  string `json:"pool"`
	Layer int    `json:"layer"`
	// TrainPairAccuracy is the share of the training demonstrations'
	// monitor pairs (last epoch) the head orders right.
	TrainPairAccuracy float64 `json:"train_pair_accuracy"`
	Chosen            bool    `json:"chosen"`
}

// ChooseVariant is the rule that picks a feature choice: the highest
// training pair accuracy, the earliest (in Variants' order) on ties. It sets
// Chosen and returns the index.
func ChooseVariant(vs []VariantResult) int {
	best := -1
	for i, v := range vs {
		if best < 0 || v.TrainPairAccuracy > vs[best].TrainPairAccuracy {
			best = i
		}
	}
	if best >= 0 {
		vs[best].Chosen = true
	}
	return best
}

func (a *auditor) stageFeatures() (string, error) {
	pos, neg := a.part(true, "tuned"), a.part(true, "base")
	fp, fn, err := a.variantFeatures(pos, neg)
	if err != nil {
		return "", err
	}
	var vs []VariantResult
	for i, v := range Variants {
		res, err := rewardhead.Train(fp[i], fn[i], a.trainConfig(a.cfg.Seed))
		if err != nil {
			return "", fmt.Errorf("pool %s at layer %d: %w", v.Pool, v.Layer, err)
		}
		vs = append(vs, VariantResult{Pool: string(v.Pool), Layer: v.Layer, TrainPairAccuracy: res.Stats[len(res.Stats)-1].PairAccuracy})
	}
	best := ChooseVariant(vs)
	// The chosen features of the training texts are kept for the irl
	// stage, which would otherwise extract them again.
	if err := os.MkdirAll(a.path("features"), 0o755); err != nil {
		return "", err
	}
	for _, x := range []struct {
		f    *rewardhead.Features
		name string
	}{{fp[best], "train-tuned"}, {fn[best], "train-base"}} {
		if err := x.f.Write(a.path("features", x.name+".safetensors")); err != nil {
			return "", err
		}
	}
	a.rep.Features = FeatureChoice{Pool: vs[best].Pool, Layer: vs[best].Layer, Rule: "highest training monitor pair accuracy among the variants", Variants: vs}
	return fmt.Sprintf("%d feature choices; pool %s at layer %d (training pair accuracy %.3f)", len(vs), vs[best].Pool, vs[best].Layer, vs[best].TrainPairAccuracy), nil
}

// variantFeatures extracts the training texts' features for every one of
// Variants, in its order. From a model folder, one pass through the model
// gives them all (Variants is a grid of layers and poolings, and
// features.Pipeline.Grid pools each layer every way at once): the nine
// passes it replaces cost three times as much, the three through every
// layer most. An .onnx encoder runs a pass a variant.
func (a *auditor) variantFeatures(pos, neg []demo) (fp, fn []*rewardhead.Features, err error) {
	var layers []int
	var pools []neox.Pooling
	for _, v := range Variants {
		if !slices.Contains(layers, v.Layer) {
			layers = append(layers, v.Layer)
		}
		if !slices.Contains(pools, v.Pool) {
			pools = append(pools, v.Pool)
		}
	}
	if a.encoder.IsONNX() {
		for _, v := range Variants {
			err := func() error {
				p, err := a.pipeline(v.Pool, v.Layer)
				if err != nil {
					return err
				}
				defer p.Destroy()
				x, err := featuresOf(p, "train/tuned", pos)
				if err != nil {
					return err
				}
				y, err := featuresOf(p, "train/base", neg)
				fp, fn = append(fp, x), append(fn, y)
				return err
			}()
			if err != nil {
				return nil, nil, fmt.Errorf("pool %s at layer %d: %w", v.Pool, v.Layer, err)
			}
		}
		return fp, fn, nil
	}
	p, err := features.NewPipeline(features.PipelineOptions{Model: a.encoder, Tokenizer: a.tokPath, Layers: layers, Pools: pools,
		BatchSize: 64, Session: a.cfg.Session, Context: a.cfg.Context, Progress: a.bars()})
	if err != nil {
		return nil, nil, err
	}
	defer p.Destroy()
	grid := func(name string, ds []demo) ([]*rewardhead.Features, error) {
		enc, err := p.Encode(name, demoRows(ds), &rows.Bad{})
		if err != nil {
			return nil, err
		}
		fs, _, err := p.Grid(name, enc)
		if err != nil {
			return nil, err
		}
		// In Variants' order: the grid is layer by layer, pools within.
		out := make([]*rewardhead.Features, len(Variants))
		for i, v := range Variants {
			out[i] = fs[slices.Index(layers, v.Layer)*len(pools)+slices.Index(pools, v.Pool)]
		}
		return out, nil
	}
	if fp, err = grid("train/tuned", pos); err != nil {
		return nil, nil, err
	}
	if fn, err = grid("train/base", neg); err != nil {
		return nil, nil, err
	}
	return fp, fn, nil
}

// scored holds the chosen features' held-out data.
type scored struct {
	heads  []*rewardhead.Head
	chosen *rewardhead.Head
	hPos   *rewardhead.Features // held-out tuned texts
	hNeg   *rewardhead.Features
	dPos   []demo
	dNeg   []demo
	trPos  *rewardhead.Features
	trNeg  *rewardhead.Features
	trDPos []demo
	trDNeg []demo
	words  *rewardhead.Features // len(words) × len(templates) rows, word-major
}

func (a *auditor) stageIRL() (string, error) {
	p, err := a.pipeline(neox.Pooling(a.rep.Features.Pool), a.rep.Features.Layer)
	if err != nil {
		return "", err
	}
	defer p.Destroy()
	s := &scored{}
	a.sc = s
	s.trDPos, s.trDNeg = a.part(true, "tuned"), a.part(true, "base")
	s.dPos, s.dNeg = a.part(false, "tuned"), a.part(false, "base")
	// The training texts' features are the features stage's (on disk, so
	// a resumed run reads what an uninterrupted one uses).
	for _, x := range []struct {
		f    **rewardhead.Features
		name string
	}{{&s.trPos, "train-tuned"}, {&s.trNeg, "train-base"}} {
		if *x.f, err = rewardhead.LoadFeatures(a.path("features", x.name+".safetensors")); err != nil {
			return "", err
		}
	}
	for _, x := range []struct {
		f    **rewardhead.Features
		ds   []demo
		name string
	}{{&s.hPos, s.dPos, "heldout-tuned"}, {&s.hNeg, s.dNeg, "heldout-base"}} {
		if *x.f, err = featuresOf(p, x.name, x.ds); err != nil {
			return "", err
		}
		if err := (*x.f).Write(a.path("features", x.name+".safetensors")); err != nil {
			return "", err
		}
	}
	res, err := rewardhead.TrainToDir(s.trPos, s.trNeg, a.trainConfig(a.cfg.Seed), a.path("heads"), true)
	if err != nil {
		return "", err
	}
	s.heads, s.chosen = res.Heads, res.Best
	a.rep.Head = res.HeadPath
	// The words' features, while the pipeline is open.
	var rs []rows.Row
	for _, w := range a.words {
		for _, t := range a.temps {
			rs = append(rs, rows.Row{Index: len(rs), Line: len(rs) + 1, Text: strings.Replace(t, "{}", w, 1)})
		}
	}
	if s.words, err = rowFeatures(p, "words", rs); err != nil {
		return "", err
	}
	if err := s.words.Write(a.path("features", "words.safetensors")); err != nil {
		return "", err
	}
	last := res.Stats[len(res.Stats)-1]
	return fmt.Sprintf("%d + %d training texts, %d epochs, monitor pair accuracy %.3f; %s", s.trPos.N, s.trNeg.N, len(res.Heads), last.PairAccuracy, res.Rule), nil
}
