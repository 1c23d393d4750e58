package policy

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"irl/neox"
	"irl/onnx"
)

// greedyReference returns the fixture's prompt (the first 6 ids of row 0) and
// transformers' 8 greedy new tokens after it.
func greedyReference(t *testing.T, ref reference) (prompt, want []int64) {
	t.Helper()
	x, err := ref.f.Get("greedy_generate")
	if err != nil {
		t.Fatal(err)
	}
	all, err := x.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	ids := ref.i64(t, "input_ids")
	for i := 0; i < 6; i++ {
		if all[i] != ids[i] {
			t.Fatalf("greedy_generate[%d] = %d is not input_ids[0,%d] = %d", i, all[i], i, ids[i])
		}
	}
	return all[:6], all[6:]
}

func newGenerator(t testing.TB, m *neox.Model) *Generator {
	t.Helper()
	return newGeneratorPath(t, m, false)
}

// newGeneratorPath opens a generator on the fused kernels' cached decoder,
// or with standard on the standard decoder.
func newGeneratorPath(t testing.TB, m *neox.Model, standard bool) *Generator {
	t.Helper()
	g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: standard}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.Fused() == standard {
		t.Fatalf("generator on fused kernels: %v, want %v", g.Fused(), !standard)
	}
	t.Cleanup(g.Destroy)
	return g
}

// Greedy decoding gives transformers' greedy_generate, alone and inside a
// padded batch with a longer prompt (left-padded for the standard decoder,
// right-padded for the cached one), on both decoders.
func TestGreedyGenerate(t *testing.T) {
	for _, name := range []string{"tiny-neox-parallel", "tiny-neox-sequential"} {
		for _, path := range paths {
			t.Run(name+"/"+path.name, func(t *testing.T) { greedyGenerate(t, name, path.standard) })
		}
	}
}

func greedyGenerate(t *testing.T, name string, standard bool) {
	m, ref := loadFixture(t, name)
	prompt, want := greedyReference(t, ref)
	g := newGeneratorPath(t, m, standard)
	o := GenerateOptions{MaxNewTokens: len(want), Sampling: SampleOptions{Greedy: true}}
	long := ref.i64(t, "input_ids")[:ref.s] // row 0, 12 tokens
	out, err := g.Generate([][]int64{prompt, long, prompt}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d sequences, want 3", len(out))
	}
	for _, i := range []int{0, 2} {
		gen := out[i]
		if gen.Prompt != i || gen.Sequence != 0 || gen.EOS {
			t.Errorf("sequence %d: prompt %d, copy %d, EOS %v", i, gen.Prompt, gen.Sequence, gen.EOS)
		}
		if !reflect.DeepEqual(gen.IDs, want) {
			t.Errorf("sequence %d: greedy ids %v, transformers %v", i, gen.IDs, want)
		}
		if len(gen.LogProbs) != len(gen.IDs) {
			t.Fatalf("%d log-probs for %d ids", len(gen.LogProbs), len(gen.IDs))
		}
	}
	// The log-probs are the full forward's log-softmax at each token.
	checkLogProbs(t, m, prompt, out[0])
	checkLogProbs(t, m, long, out[1])
	// Batched results equal generating each prompt alone.
	alone, err := g.Generate([][]int64{long}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(alone[0].IDs, out[1].IDs) {
		t.Errorf("12-token prompt: %v alone, %v in a batch", alone[0].IDs, out[1].IDs)
	}
}

// checkLogProbs recomputes the log-probabilities of gen's tokens with the
// full forward graph; valid where sampling used the model's plain softmax
// (greedy, or temperature 1 with no top-k / top-p).
func checkLogProbs(t *testing.T, m *neox.Model, prompt []int64, gen Generation) {
	t.Helper()
	seq := append(append([]int64{}, prompt...), gen.IDs...)
	r, err := NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Destroy()
	out, err := r.Forward(&neox.Batch{B: 1, S: len(seq), InputIDs: seq})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.VocabSize
	logits := out[neox.LogitsOutput].Data
	for i, id := range gen.IDs {
		row := logits[(len(prompt)+i-1)*v : (len(prompt)+i)*v]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		var sum float64
		for _, x := range row {
			sum += math.Exp(float64(x) - mx)
		}
		want := float64(row[id]) - mx - math.Log(sum)
		if math.Abs(gen.LogProbs[i]-want) > 1e-4 {
			t.Errorf("token %d (%d): log-prob %.6f, forward gives %.6f", i, id, gen.LogProbs[i], want)
		}
	}
}

// A sequence stops at EOS, which it includes; the others of its batch go on
// and are unaffected by its leaving.
func TestGenerateEOS(t *testing.T) {
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { generateEOS(t, path.standard) })
	}
}

func generateEOS(t *testing.T, standard bool) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	ids := ref.i64(t, "input_ids")
	// Greedy, these give 102 400 153 …, 287 73 102 400 …, 20 20 20 …: the
	// first rows of the batch finish first, so the cache is compacted.
	prompts := [][]int64{ids[ref.s+3 : 2*ref.s], ids[:ref.s], ids[:6]}
	o := GenerateOptions{MaxNewTokens: 8, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
	free, err := newGeneratorPath(t, m, standard).Generate(prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	const eos = 400
	var want [][]int64
	for _, gen := range free {
		w := gen.IDs
		for i, id := range w {
			if id == eos {
				w = w[:i+1]
				break
			}
		}
		want = append(want, w)
	}
	if len(want[0]) >= len(want[1]) || len(want[1]) >= len(want[2]) || len(want[2]) != 8 {
		t.Fatalf("greedy sequences %v: want the first two to end at EOS %d, the first sooner, the last not", want, eos)
	}

	m.Config.EOSTokenID = eos
	o.IgnoreEOS = false
	g := newGeneratorPath(t, m, standard)
	out, err := g.Generate(prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if !reflect.DeepEqual(out[i].IDs, want[i]) || out[i].EOS != (len(want[i]) < 8) || len(out[i].LogProbs) != len(want[i]) {
			t.Errorf("sequence %d: ids %v EOS %v, %d log-probs; want %v", i, out[i].IDs, out[i].EOS, len(out[i].LogProbs), want[i])
		}
		for j := range out[i].LogProbs {
			if math.Abs(out[i].LogProbs[j]-free[i].LogProbs[j]) > 1e-5 {
				t.Errorf("sequence %d token %d: log-prob %v, %v without EOS", i, j, out[i].LogProbs[j], free[i].LogProbs[j])
			}
		}
	}
}

// Sampled sequences: n copies per prompt in order, reproducible from the
// seed whatever the batch size, different between copies and seeds, and
// their log-probs are the model's (temperature 1, no truncation).
func TestGenerateNumReturnSequences(t *testing.T) {
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { generateNumReturnSequences(t, path.standard) })
	}
}

func generateNumReturnSequences(t *testing.T, standard bool) {
	m, ref := loadFixture(t, "tiny-neox-parallel")
	ids := ref.i64(t, "input_ids")
	prompts := [][]int64{ids[:6], ids[ref.s+3 : 2*ref.s]} // row 1 without its padding
	g := newGeneratorPath(t, m, standard)
	o := GenerateOptions{MaxNewTokens: 8, Sampling: SampleOptions{Temperature: 1, TopP: 1}, Seed: 7, NumReturnSequences: 3}
	a, err := g.Generate(prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 6 {
		t.Fatalf("%d sequences, want 6", len(a))
	}
	for k, gen := range a {
		if gen.Prompt != k/3 || gen.Sequence != k%3 {
			t.Errorf("sequence %d is prompt %d copy %d", k, gen.Prompt, gen.Sequence)
		}
		if len(gen.IDs) != len(gen.LogProbs) || len(gen.IDs) == 0 || (len(gen.IDs) < 8 && !gen.EOS) {
			t.Errorf("sequence %d: %d ids, %d log-probs, EOS %v", k, len(gen.IDs), len(gen.LogProbs), gen.EOS)
		}
	}
	if reflect.DeepEqual(a[0].IDs, a[1].IDs) && reflect.DeepEqual(a[1].IDs, a[2].IDs) {
		t.Errorf("the 3 copies of prompt 0 are identical: %v", a[0].IDs)
	}
	o.BatchSize = 2
	b, err := g.Generate(prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	for k := range a {
		if !reflect.DeepEqual(a[k].IDs, b[k].IDs) {
			t.Errorf("sequence %d: %v at batch size 6, %v at batch size 2", k, a[k].IDs, b[k].IDs)
		}
		for i := range a[k].LogProbs {
			if math.Abs(a[k].LogProbs[i]-b[k].LogProbs[i]) > 1e-5 {
				t.Errorf("sequence %d token %d: log-prob %v at batch size 6, %v at 2", k, i, a[k].LogProbs[i], b[k].LogProbs[i])
			}
		}
	}
	o.Seed = 8
	c, err := g.Generate(prompts, o)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for k := range a {
		if reflect.DeepEqual(a[k].IDs, c[k].IDs) {
			same++
		}
	}
	if same == len(a) {
		t.Error("seeds 7 and 8 give the same sequences")
	}
	for k := range a {
		checkLogProbs(t, m, prompts[a[k].Prompt], a[k])
	}
}

func TestGenerateBadInput(t *testing.T) {
	m, err := neox.Load(filepath.Join(fixtures, "tiny-neox-parallel"))
	if err != nil {
		t.Fatal(err)
	}
	g := newGenerator(t, m)
	maxPos := m.Config.MaxPositions
	long := make([]int64, maxPos-8+1)
	fits := make([]int64, maxPos-8)
	greedy := SampleOptions{Greedy: true}
	cases := []struct {
		name    string
		prompts [][]int64
		o       GenerateOptions
		index   int
		expect  []string
	}{
		{"too long", [][]int64{{1, 2}, long}, GenerateOptions{MaxNewTokens: 8, Sampling: greedy}, 1,
			[]string{"prompt 1 ", strconv.Itoa(len(long)) + " tokens", "max_position_embeddings " + strconv.Itoa(maxPos)}},
		{"longer than the model", [][]int64{make([]int64, maxPos+1)}, GenerateOptions{MaxNewTokens: 1, Sampling: greedy}, 0,
			[]string{"prompt 0 ", "max_position_embeddings"}},
		{"empty", [][]int64{{1}, {2}, {}}, GenerateOptions{MaxNewTokens: 8, Sampling: greedy}, 2,
			[]string{"prompt 2 ", "empty"}},
		{"outside the vocabulary", [][]int64{{1, 512}}, GenerateOptions{MaxNewTokens: 8, Sampling: greedy}, 0,
			[]string{"prompt 0 ", "512", "vocabulary"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Generate(tc.prompts, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			pe, ok := err.(*PromptError)
			if !ok || pe.Index != tc.index {
				t.Errorf("error %#v is not a PromptError for prompt %d", err, tc.index)
			}
			for _, s := range tc.expect {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	for _, o := range []GenerateOptions{{MaxNewTokens: 0, Sampling: greedy}, {MaxNewTokens: 2, NumReturnSequences: -1, Sampling: greedy}} {
		if _, err := g.Generate([][]int64{{1}}, o); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	if _, err := g.Generate(nil, GenerateOptions{MaxNewTokens: 1, Sampling: greedy}); err == nil {
		t.Error("no prompts: no error")
	}
	// A broken model (NaN logits) gives an error, not a panic.
	bad, _ := neox.Load(filepath.Join(fixtures, "tiny-neox-parallel"))
	bad.Params["embed_out.weight"].Data[0] = float32(math.NaN())
	if _, err := newGenerator(t, bad).Generate([][]int64{{1, 2}}, GenerateOptions{MaxNewTokens: 2, Sampling: greedy}); err == nil ||
		!strings.Contains(err.Error(), "prompt 0") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN logits: %v", err)
	}
	// The longest prompt that fits is accepted.
	if out, err := g.Generate([][]int64{fits}, GenerateOptions{MaxNewTokens: 8, Sampling: greedy, IgnoreEOS: true}); err != nil || len(out[0].IDs) != 8 {
		t.Errorf("prompt of %d tokens + 8 new: %v", len(fits), err)
	}
}

// Many generations leave the process's memory flat: every step's ONNX
// Runtime values are released.
func TestGenerateNoLeak(t *testing.T) {
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { generateNoLeak(t, path.standard) })
	}
}

func generateNoLeak(t *testing.T, standard bool) {
	m, err := neox.Load(filepath.Join(fixtures, "tiny-neox-parallel"))
	if err != nil {
		t.Fatal(err)
	}
	g := newGeneratorPath(t, m, standard)
	prompts := [][]int64{{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 11}, {12}, {13, 14, 15, 16, 17}}
	o := GenerateOptions{MaxNewTokens: 32, Sampling: SampleOptions{Temperature: 1, TopP: 1}, IgnoreEOS: true}
	run := func(n int) {
		for i := 0; i < n; i++ {
			o.Seed = uint64(i)
			if _, err := g.Generate(prompts, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(20)
	before := rss(t)
	run(300) // 9,600 steps, each with 2+4·layers ORT values
	after := rss(t)
	t.Logf("RSS %d KiB -> %d KiB over 300 generations", before, after)
	if after-before > 10<<10 {
		t.Errorf("RSS grew from %d KiB to %d KiB over 300 generations", before, after)
	}
}

func rss(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// BenchmarkGenerate measures greedy generation on a pythia-70m-shaped model
// on CPU: batch 32, 32-token prompts, 32 new tokens (prefill included), on
// the cached decoder (fused kernels, cache written in place, log-sum-exp in
// the graph) and on the standard one (each step concatenates the past and
// new keys and values into new tensors; log-sum-exp in Go), in the same
// process. sample-share is the fraction of the time spent choosing tokens
// in Go.
//
//	go test -run '^$' -bench Generate -benchtime 3x ./policy/
func BenchmarkGenerate(b *testing.B) {
	cfg := neox.Shapes["pythia-70m"]
	m, err := neox.Init(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const bs, plen, newTokens = 32, 32, 32
	prompts := benchPrompts(cfg.VocabSize, bs, plen)
	for _, path := range paths {
		b.Run(path.name, func(b *testing.B) {
			g, err := NewGeneratorWith(m, neox.DecodeOptions{Standard: path.standard}, onnx.Options{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Destroy()
			o := GenerateOptions{MaxNewTokens: newTokens, Sampling: SampleOptions{Greedy: true}, IgnoreEOS: true}
			sec := timeGenerate(b, func() ([]Generation, error) { return g.Generate(prompts, o) }, func() { g.sampling = 0 })
			b.ReportMetric(g.sampling.Seconds()/sec, "sample-share")
		})
	}
}

// benchPrompts are n random prompts of plen tokens (no id 0), the same for
// every generation benchmark.
func benchPrompts(vocab, n, plen int) [][]int64 {
	r := rand.New(rand.NewPCG(1, 2))
	prompts := make([][]int64, n)
	for i := range prompts {
		prompts[i] = make([]int64, plen)
		for j := range prompts[i] {
			prompts[i][j] = 1 + r.Int64N(int64(vocab-1))
		}
	}
	return prompts
}

// timeGenerate runs gen once to warm up (and, with CUDA graphs, capture),
// then reset (if any), then b.N
// times timed, and reports new tokens a second and seconds a batch; it
// returns the seconds timed.
func timeGenerate(b *testing.B, gen func() ([]Generation, error), reset func()) float64 {
	if _, err := gen(); err != nil {
		b.Fatal(err)
	}
	if reset != nil {
		reset()
	}
	b.ResetTimer()
	start := time.Now()
	tokens := 0
	for i := 0; i < b.N; i++ {
		out, err := gen()
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range out {
			tokens += len(g.IDs)
		}
	}
	// Stopped here so that ns/op leaves out the callers' deferred Destroy.
	b.StopTimer()
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(tokens)/sec, "new-tokens/s")
	b.ReportMetric(sec/float64(b.N), "s/batch")
	return sec
}
