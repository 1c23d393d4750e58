package classifier

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"time"

	"irl/batching"
	"irl/onnx"
	"irl/progress"
	"irl/weights"
)

// Classifier runs a sequence classifier in an ONNX Runtime session: a graph
// built from a Model, or an .onnx file. It runs through a binding whose
// only output is the logits, [B, labels], in CPU memory: on CUDA nothing
// else crosses to the host. Destroy it when done. A Classifier is not safe
// for concurrent use.
type Classifier struct {
	s           *onnx.BoundSession
	bind        *onnx.Binding
	cpu         *onnx.MemoryInfo
	name        string // the model's folder or file, for errors
	labels      []string
	problemType string
	pad         int64
	// maxTokens and vocab bound the inputs; 0 means unknown (an .onnx file
	// without config.json), and then ONNX Runtime reports what is out of range.
	maxTokens int
	vocab     int
	// tokenTypes is set when the session takes TokenTypeIDs.
	tokenTypes bool
}

// Open makes a Classifier from a Hugging Face folder (see Load) or, when path
// ends in .onnx, from an exported graph (see OpenONNX).
func Open(path string, so onnx.Options) (*Classifier, error) {
	if weights.KindOf(path) == weights.KindONNX {
		return OpenONNX(path, so)
	}
	m, err := Load(path)
	if err != nil {
		return nil, err
	}
	return New(m, so)
}

// New builds m's graph and opens its session. ONNX Runtime keeps its own copy
// of the weights, so m may be dropped afterwards.
func New(m *Model, so onnx.Options) (*Classifier, error) {
	g, err := BuildGraph(m)
	if err != nil {
		return nil, err
	}
	s, err := onnx.NewBoundGraphSession(g, so)
	if err != nil {
		return nil, err
	}
	c := m.Config
	name := m.Dir
	if name == "" {
		name = "classifier"
	}
	cl := &Classifier{
		s: s, name: name, labels: c.Labels, problemType: c.ProblemType,
		pad: int64(c.PadTokenID), maxTokens: c.MaxTokens(), vocab: c.VocabSize,
	}
	if err := cl.bindLogits(); err != nil {
		cl.Destroy()
		return nil, err
	}
	return cl, nil
}

// bindLogits makes the session's binding and the CPU memory its one
// output, the logits, is bound to at every run.
func (c *Classifier) bindLogits() error {
	var err error
	if c.bind, err = c.s.NewBinding(); err == nil {
		c.cpu, err = onnx.NewMemoryInfo(onnx.CPU, 0)
	}
	return err
}

// OpenONNX opens an exported sequence classifier, such as torch.onnx.export
// or Optimum's export of a RobertaForSequenceClassification: inputs
// input_ids and attention_mask (I64 [B,S]), optionally token_type_ids (fed
// zeros), and an output logits (F32 [B,L]). Any other input is refused.
//
// Labels, problem type, pad id and the length limit come from a config.json
// beside the file when there is one (it must then be a valid RoBERTa
// config). Without one, the labels are LABEL_0…LABEL_{L-1}, L read from a
// one-token probe run; the pad id is 1, RoBERTa's and XLM-RoBERTa's; and the
// length limit and vocabulary are unknown (MaxTokens returns 0), so ONNX
// Runtime reports ids or positions out of range.
func OpenONNX(path string, so onnx.Options) (*Classifier, error) {
	ins, outs, err := onnx.IOInfo(nil, path)
	if err != nil {
		return nil, err
	}
	c := &Classifier{name: path, pad: 1}
	have := map[string]bool{}
	for _, in := range ins {
		switch in {
		case InputIDs, AttentionMask:
		case TokenTypeIDs:
			c.tokenTypes = true
		default:
			return nil, fmt.Errorf("%s: input %q is not supported: a classifier takes %s and %s (and optionally %s)", path, in, InputIDs, AttentionMask, TokenTypeIDs)
		}
		have[in] = true
	}
	if !have[InputIDs] || !have[AttentionMask] {
		return nil, fmt.Errorf("%s: inputs %v: want %s and %s", path, ins, InputIDs, AttentionMask)
	}
	found := false
	for _, o := range outs {
		found = found || o == LogitsOutput
	}
	if !found {
		return nil, fmt.Errorf("%s: outputs %v: want %s", path, outs, LogitsOutput)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "config.json")
	cfg, err := LoadConfig(cfgPath)
	switch {
	case err == nil:
		c.labels, c.problemType = cfg.Labels, cfg.ProblemType
		c.pad, c.maxTokens, c.vocab = int64(cfg.PadTokenID), cfg.MaxTokens(), cfg.VocabSize
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: the config.json beside it: %w", path, err)
	}
	if c.s, err = onnx.NewBoundSession(nil, path, so); err != nil {
		return nil, err
	}
	if err := c.bindLogits(); err != nil {
		c.Destroy()
		return nil, err
	}
	if c.labels == nil {
		// A one-token row, id 0 (<s> in RoBERTa's vocabulary), tells the
		// width of the logits.
		logits, err := c.run([]int64{0}, []int64{1}, 1, 1, -1)
		if err != nil {
			c.Destroy()
			return nil, fmt.Errorf("%s: probe run to read the number of labels: %w", path, err)
		}
		c.labels = make([]string, len(logits))
		for i := range c.labels {
			c.labels[i] = fmt.Sprintf("LABEL_%d", i)
		}
	}
	return c, nil
}

// Labels are the class names, in logit order.
func (c *Classifier) Labels() []string { return append([]string(nil), c.labels...) }

// LabelIndex is the logit column of a label, such as "toxic"; an unknown
// name is an error that lists the labels.
func (c *Classifier) LabelIndex(name string) (int, error) {
	for i, l := range c.labels {
		if l == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s: no label %q: its labels are %s", c.name, name, describeLabels(c.labels))
}

// ProblemType is config.json's problem_type: "", SingleLabel or MultiLabel.
func (c *Classifier) ProblemType() string { return c.problemType }

// MaxTokens is the longest input, special tokens included, that the model's
// position table covers: max_position_embeddings − pad_token_id − 1 (512 for
// roberta-base). It is 0 when unknown (an .onnx file without config.json).
func (c *Classifier) MaxTokens() int { return c.maxTokens }

// VocabSize is the size of the vocabulary ids must fall in, from
// config.json; 0 when unknown (an .onnx file without config.json).
func (c *Classifier) VocabSize() int { return c.vocab }

// PadID is the padding token id, which Score pads with.
func (c *Classifier) PadID() int64 { return c.pad }

// Destroy releases the session. The Classifier must not be used afterwards;
// a second Destroy does nothing.
func (c *Classifier) Destroy() {
	c.bind.Destroy()
	c.cpu.Destroy()
	c.s.Destroy()
	c.bind, c.cpu, c.s = nil, nil, nil
}

// Logits classifies a right-padded batch: ids and mask are I64 [b,s],
// row-major, mask 1 on real tokens; each row starts with a real token (the
// head reads the first one). It returns logits F32 [b, len(Labels())].
// Ids outside the vocabulary, rows longer than MaxTokens, and rows that
// start with padding are errors.
func (c *Classifier) Logits(ids, mask []int64, b, s int) ([]float32, error) {
	if c.s == nil {
		panic("classifier: Logits after Destroy")
	}
	if b <= 0 || s <= 0 {
		return nil, fmt.Errorf("%s: empty batch [%d,%d]", c.name, b, s)
	}
	if len(ids) != b*s || len(mask) != b*s {
		return nil, fmt.Errorf("%s: batch [%d,%d] needs %d ids and mask values, got %d and %d", c.name, b, s, b*s, len(ids), len(mask))
	}
	for r := 0; r < b; r++ {
		n := 0 // non-pad tokens: what RoBERTa numbers positions by
		for j := 0; j < s; j++ {
			id, m := ids[r*s+j], mask[r*s+j]
			if id < 0 || (c.vocab > 0 && id >= int64(c.vocab)) {
				vocab := "unknown"
				if c.vocab > 0 {
					vocab = fmt.Sprint(c.vocab)
				}
				return nil, fmt.Errorf("%s: input_ids[%d,%d] = %d is outside the vocabulary [0,%s)", c.name, r, j, id, vocab)
			}
			if m != 0 && m != 1 {
				return nil, fmt.Errorf("%s: attention_mask[%d,%d] = %d: want 0 or 1", c.name, r, j, m)
			}
			if id != c.pad {
				n++
			}
		}
		if mask[r*s] != 1 {
			return nil, fmt.Errorf("%s: row %d starts with padding: the head reads the first token (<s>), so rows must be padded on the right", c.name, r)
		}
		if c.maxTokens > 0 && n > c.maxTokens {
			return nil, fmt.Errorf("%s: row %d has %d tokens, more than the %d the model's positions cover", c.name, r, n, c.maxTokens)
		}
	}
	return c.run(ids, mask, b, s, len(c.labels))
}

// run runs the session on a checked batch. width is the expected number of
// labels, or -1 to accept any.
func (c *Classifier) run(ids, mask []int64, b, s, width int) ([]float32, error) {
	var ts []*onnx.DeviceTensor
	defer func() {
		c.bind.ClearInputs()
		c.bind.ClearOutputs()
		for _, t := range ts {
			t.Destroy()
		}
	}()
	var zeros []int64
	for _, name := range c.s.Inputs() {
		data := ids
		switch name {
		case AttentionMask:
			data = mask
		case TokenTypeIDs:
			if zeros == nil {
				zeros = make([]int64, b*s)
			}
			data = zeros
		}
		t, err := onnx.NewHostTensorI64(data, int64(b), int64(s))
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
		if err := c.bind.BindInput(name, t); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// Bound afresh at each run: a binding keeps the tensor a run allocated
	// as the next run's output, whatever its shape.
	if err := c.bind.BindOutputToDevice(LogitsOutput, c.cpu); err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if err := c.bind.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	out, err := c.bind.Output(LogitsOutput)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	defer out.Destroy()
	data, err := out.Float32s()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if shape := out.Shape(); len(shape) != 2 || shape[0] != int64(b) || (width >= 0 && shape[1] != int64(width)) {
		want := "L"
		if width >= 0 {
			want = fmt.Sprint(width)
		}
		return nil, fmt.Errorf("%s: %s has shape %v, want [%d,%s]", c.name, LogitsOutput, shape, b, want)
	}
	// The output's memory belongs to ONNX Runtime and goes with it.
	return append([]float32(nil), data...), nil
}

// Score classifies every sequence of token ids (special tokens included) and
// returns logits F32 [len(seqs), len(Labels())] in the order of seqs. Rows
// are sorted by length into batches of batchSize (32 if ≤ 0), each padded on
// the right with PadID to its longest row, so little work goes to padding.
// A non-nil progress receives a progress bar. An empty or over-long
// sequence is an error naming its index, found before any work is done.
func (c *Classifier) Score(seqs [][]int64, batchSize int, progressTo io.Writer) ([]float32, error) {
	if batchSize <= 0 {
		batchSize = 32
	}
	width := len(c.labels)
	lengths := make([]int, len(seqs))
	for i, q := range seqs {
		if len(q) == 0 {
			return nil, fmt.Errorf("%s: sequence %d has no tokens", c.name, i)
		}
		if c.maxTokens > 0 && len(q) > c.maxTokens {
			return nil, fmt.Errorf("%s: sequence %d has %d tokens, more than the %d the model's positions cover", c.name, i, len(q), c.maxTokens)
		}
		lengths[i] = len(q)
	}
	out := make([]float32, len(seqs)*width)
	bar := progress.New(progressTo, len(seqs), "classifier", "rows")
	start := time.Now()
	tokens := 0
	err := batching.Sorted(lengths, batchSize, func(rows []int, longest int) error {
		ids, mask := batching.RightPad(seqs, rows, longest, c.pad)
		logits, err := c.Logits(ids, mask, len(rows), longest)
		if err != nil {
			return err
		}
		for r, i := range rows {
			copy(out[i*width:(i+1)*width], logits[r*width:(r+1)*width])
			tokens += len(seqs[i])
		}
		bar.Describe(fmt.Sprintf("classifier %.0f tokens/s", float64(tokens)/max(time.Since(start).Seconds(), 1e-9)))
		bar.Add(len(rows))
		return nil
	})
	if err != nil {
		return nil, err
	}
	bar.Finish()
	return out, nil
}

// Probs turns logits [N, len(Labels())] into probabilities of the same
// shape: per row, a softmax over the labels, or for MultiLabel classifiers an
// independent sigmoid per label. Logits of another width is a programmer
// error and panics.
func (c *Classifier) Probs(logits []float32) []float32 {
	return probs(logits, len(c.labels), c.problemType == MultiLabel)
}

func probs(logits []float32, width int, sigmoid bool) []float32 {
	if width <= 0 || len(logits)%width != 0 {
		panic(fmt.Sprintf("classifier: Probs of %d logits, not a multiple of %d labels", len(logits), width))
	}
	out := make([]float32, len(logits))
	if sigmoid {
		for i, z := range logits {
			out[i] = float32(1 / (1 + math.Exp(-float64(z))))
		}
		return out
	}
	for r := 0; r < len(logits); r += width {
		row := logits[r : r+width]
		top := math.Inf(-1)
		for _, z := range row {
			top = max(top, float64(z))
		}
		var sum float64
		for _, z := range row {
			sum += math.Exp(float64(z) - top)
		}
		for j, z := range row {
			out[r+j] = float32(math.Exp(float64(z)-top) / sum)
		}
	}
	return out
}
