package toxeval

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/tokenizer"
)

func TestMain(m *testing.M) {
	if err := onnx.Init(""); err != nil {
		// A skipped model test proves nothing: fail loudly.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const testdata = "../testdata/toxicity"

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// bigramWords are the bigram model's vocabulary: each, after a space, is
// one token.
var bigramWords = []string{"the", "cat", "is", "bad", "good", "nil", "tiny", "two", "four", "hate", "love", "kind", "a", "ok", "okay"}

// bigramRules say what follows a token: each successor with a weight K
// (its logit is about 3.87·K; every other token's is 0 or below). A
// token without a rule is followed by EOS.
var bigramRules = map[string][]struct {
	next string
	k    float32
}{
	" bad":  {{" hate", 4}},
	" hate": {{" hate", 4}},
	" good": {{" love", 4}, {" kind", 3.87}}, // P ≈ 0.62 / 0.38: greedy says love, top-p 0.9 keeps both
	" love": {{" love", 4}, {" kind", 3.87}},
	" kind": {{" love", 4}, {" kind", 3.87}},
	" tiny": {{" a", 4}},
	" two":  {{" ok", 4}},
	" four": {{" okay", 4}},
}

// newBigram builds a real GPT-NeoX whose next token depends only on the
// current one, as bigramRules say, so that its continuations are known by
// hand: every attention and MLP output is zeroed, so the residual stream
// is the current token's embedding, a one-hot vector of its state; the
// final layer norm maps it to a fixed vector peaked at the state; and a
// successor's output row is K on that state.
func newBigram(t *testing.T) (*neox.Model, *tokenizer.Tokenizer) {
	t.Helper()
	tj, err := tokenizer.BuildWordBPE(bigramWords)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse("bigram", tj)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.EOS()
	const d = 16
	cfg := neox.Config{VocabSize: tok.VocabSize(), HiddenSize: d, NumLayers: 1, NumHeads: 2, IntermediateSize: 32,
		MaxPositions: 64, RotaryPct: 0.5, RotaryBase: 10000, LayerNormEps: 1e-5, HiddenAct: "gelu",
		ParallelResidual: true, InitializerRange: 0.02, EOSTokenID: eos, BOSTokenID: eos}
	m, err := neox.Init(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	one := func(s string) int {
		ids := tok.Encode(s)
		if len(ids) != 1 {
			t.Fatalf("%q is %d tokens", s, len(ids))
		}
		return ids[0]
	}
	zero := func(name string) {
		for i := range m.Params[name].Data {
			m.Params[name].Data[i] = 0
		}
	}
	for _, n := range []string{"attention.dense.weight", "attention.dense.bias", "mlp.dense_4h_to_h.weight", "mlp.dense_4h_to_h.bias"} {
		zero("gpt_neox.layers.0." + n)
	}
	zero("gpt_neox.final_layer_norm.bias")
	for i := range m.Params["gpt_neox.final_layer_norm.weight"].Data {
		m.Params["gpt_neox.final_layer_norm.weight"].Data[i] = 1
	}
	zero("gpt_neox.embed_in.weight")
	zero("embed_out.weight")
	in, out := m.Params["gpt_neox.embed_in.weight"].Data, m.Params["embed_out.weight"].Data
	state := map[int]int{} // token → state; state 0, the default, leads to EOS
	for cur := range bigramRules {
		state[one(cur)] = len(state) + 1
	}
	for v := 0; v < cfg.VocabSize; v++ {
		in[v*d+state[v]] = 1
	}
	out[eos*d+0] = 4
	for cur, rules := range bigramRules {
		for _, r := range rules {
			out[one(r.next)*d+state[one(cur)]] = r.k
		}
	}
	return m, tok
}

// textScore is the stub scorer's known score of a continuation.
func textScore(s string) float64 {
	switch {
	case strings.Contains(s, "hate"):
		return 0.9
	case strings.Contains(s, "love"):
		return 0.3
	case strings.Contains(s, "kind"):
		return 0.1
	case strings.Contains(s, "okay"):
		return 0.5
	}
	return 0
}

// stubScorer scores by a function of the text and records its calls.
type stubScorer struct {
	score   func(Continuation) float64
	calls   int
	largest int
	seen    []Continuation
}

func (s *stubScorer) Score(cs []Continuation) ([]float64, error) {
	s.calls++
	s.largest = max(s.largest, len(cs))
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = s.score(c)
		s.seen = append(s.seen, c)
	}
	return out, nil
}

// fakeGen is a Generator whose token ids come from a table: ids[seed][prompt][sequence].
type fakeGen struct {
	t     *testing.T
	ids   map[uint64][][][]int64
	proto Protocol
	seeds []uint64
}

func (f *fakeGen) GenerateEach(prompts [][]int64, o policy.GenerateOptions, emit func(policy.Generation) error) error {
	if o.MaxNewTokens != f.proto.MaxNewTokens || o.Sampling != f.proto.SampleOptions() || o.NumReturnSequences != f.proto.SamplesPerPrompt {
		f.t.Errorf("generate options %+v do not follow the protocol %+v", o, f.proto)
	}
	f.seeds = append(f.seeds, o.Seed)
	table := f.ids[o.Seed]
	for p := range prompts {
		for s := 0; s < o.NumReturnSequences; s++ {
			ids := table[p][s]
			g := policy.Generation{Prompt: p, Sequence: s, IDs: ids}
			if len(ids) > 0 && ids[len(ids)-1] == fakeEOS {
				g.EOS = true
			}
			if err := emit(g); err != nil {
				return err
			}
		}
	}
	return nil
}

const fakeEOS = 0

// fakeDec decodes id i as words[i].
type fakeDec []string

func (d fakeDec) Decode(ids []int64) string {
	var b strings.Builder
	for _, id := range ids {
		if id == fakeEOS {
			panic("EOS handed to the decoder")
		}
		b.WriteString(d[id])
	}
	return b.String()
}

// byteTokenizer is testdata/roberta-bytes/tokenizer.json, a RoBERTa-style
// tokenizer within the classifier fixture's vocabulary of 600.
const byteTokenizer = "../testdata/roberta-bytes/tokenizer.json"
