package policy

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// refDist is the distribution Sample should draw from, written as
// transformers' warpers compute it, with full sorts: scale by temperature;
// top-k sets every score below the k-th largest to -Inf; top-p sorts
// ascending, takes the softmax's cumulative sum and removes the tokens where
// it is <= 1-p, except the most probable one. Ties in the ascending sort put
// the higher index first, so that the lower index counts as more probable.
func refDist(logits []float32, o SampleOptions) []float64 {
	n := len(logits)
	z := make([]float64, n)
	for i, l := range logits {
		z[i] = float64(l) / o.Temperature
	}
	if o.TopK > 0 && o.TopK < n {
		sorted := slices.Clone(z)
		sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
		kth := sorted[o.TopK-1]
		for i := range z {
			if z[i] < kth {
				z[i] = math.Inf(-1)
			}
		}
	}
	softmax := func(z []float64) []float64 {
		m := slices.Max(z)
		p := make([]float64, len(z))
		var s float64
		for i := range z {
			p[i] = math.Exp(z[i] - m)
			s += p[i]
		}
		for i := range p {
			p[i] /= s
		}
		return p
	}
	p := softmax(z)
	if o.TopP > 0 && o.TopP < 1 {
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool {
			if z[order[a]] != z[order[b]] {
				return z[order[a]] < z[order[b]]
			}
			return order[a] > order[b]
		})
		var cum float64
		for j, i := range order {
			cum += p[i]
			if cum <= 1-o.TopP && j < n-1 {
				z[i] = math.Inf(-1)
			}
		}
		p = softmax(z)
	}
	return p
}

// chiSquare is Pearson's statistic of counts against probabilities, over
// the tokens of positive probability, and its degrees of freedom.
func chiSquare(counts []int, probs []float64, draws int) (stat float64, df int) {
	for i, p := range probs {
		if p == 0 {
			continue
		}
		e := p * float64(draws)
		d := float64(counts[i]) - e
		stat += d * d / e
		df++
	}
	return stat, df - 1
}

// critical is the chi-square value a correct sampler exceeds with
// probability 1e-6.
func critical(df int) float64 { return distuv.ChiSquared{K: float64(df)}.Quantile(1 - 1e-6) }

var testLogits = []float32{2.0, 1.5, 1.2, 0.3, 0.0, -0.5, -1.0, -3.0, float32(math.Inf(-1)), 1.1}

func TestSampleDistribution(t *testing.T) {
	const draws = 200_000
	for _, c := range []struct {
		name string
		o    SampleOptions
		kept int // tokens the filters keep, checked against refDist
	}{
		{"plain", SampleOptions{Temperature: 1}, 9},
		{"temperature 0.6", SampleOptions{Temperature: 0.6}, 9},
		{"temperature 2.5", SampleOptions{Temperature: 2.5}, 9},
		{"top-k 4", SampleOptions{Temperature: 1, TopK: 4}, 4},
		{"top-p 0.8", SampleOptions{Temperature: 1, TopP: 0.8}, 4},
		{"top-p 0.3", SampleOptions{Temperature: 1, TopP: 0.3}, 1},
		{"all three", SampleOptions{Temperature: 0.8, TopK: 6, TopP: 0.9}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := refDist(testLogits, c.o)
			kept := 0
			for _, p := range want {
				if p > 0 {
					kept++
				}
			}
			if kept != c.kept {
				t.Fatalf("reference keeps %d tokens, test expects %d", kept, c.kept)
			}
			s, err := NewSampler(c.o, 42)
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]int, len(testLogits))
			for range draws {
				tok, lp := s.Sample(testLogits)
				if want[tok] == 0 {
					t.Fatalf("sampled token %d, which the filters remove", tok)
				}
				if math.Abs(lp-math.Log(want[tok])) > 1e-12 {
					t.Fatalf("token %d: logprob %v, want log %v = %v", tok, lp, want[tok], math.Log(want[tok]))
				}
				counts[tok]++
			}
			if kept == 1 {
				return
			}
			stat, df := chiSquare(counts, want, draws)
			if crit := critical(df); stat > crit {
				t.Errorf("chi-square %.1f > %.1f (df %d): counts %v, want probabilities %v", stat, crit, df, counts, want)
			}
		})
	}
}

// TestChiSquareDetects makes sure the statistic used above can fail: the
// draws of the plain sampler are far from the temperature-0.6 distribution
// and from the top-k distribution.
func TestChiSquareDetects(t *testing.T) {
	const draws = 200_000
	s, _ := NewSampler(SampleOptions{Temperature: 1}, 7)
	counts := make([]int, len(testLogits))
	for range draws {
		tok, _ := s.Sample(testLogits)
		counts[tok]++
	}
	if stat, df := chiSquare(counts, refDist(testLogits, SampleOptions{Temperature: 1}), draws); stat > critical(df) {
		t.Fatalf("plain draws fail against their own distribution: %.1f", stat)
	}
	wrong := refDist(testLogits, SampleOptions{Temperature: 0.95})
	if stat, df := chiSquare(counts, wrong, draws); stat <= critical(df) {
		t.Errorf("chi-square %.1f does not reject temperature 0.95 for temperature-1 draws (critical %.1f)", stat, critical(df))
	}
}

// TestSupportLargeVocab compares the tokens Sample may draw, and their
// probabilities, with refDist on vocabulary-sized logits, including integer
// logits full of ties at the top-k and top-p cuts.
func TestSupportLargeVocab(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 50304
	normal := make([]float32, n)
	for i := range normal {
		normal[i] = float32(r.NormFloat64() * 3)
	}
	ties := make([]float32, n)
	for i := range ties {
		ties[i] = float32(r.IntN(21) - 10)
	}
	sortedUp := make([]float32, n)
	for i := range sortedUp {
		sortedUp[i] = float32(i) / 1000
	}
	for name, logits := range map[string][]float32{"normal": normal, "ties": ties, "sorted": sortedUp} {
		for _, o := range []SampleOptions{
			{Temperature: 1, TopK: 1},
			{Temperature: 1, TopK: 50},
			{Temperature: 0.7, TopK: 1000},
			{Temperature: 1, TopP: 0.9},
			{Temperature: 1.3, TopP: 0.5},
			{Temperature: 0.9, TopK: 200, TopP: 0.8317},
			{Temperature: 1, TopK: 3000, TopP: 0.9913},
		} {
			s, _ := NewSampler(o, 1)
			ids, total := s.support(logits, argmax(logits))
			want := refDist(logits, o)
			got := make([]float64, n)
			for _, i := range ids {
				got[i] = s.w[i] / total
			}
			for i := range want {
				if (got[i] > 0) != (want[i] > 0) || math.Abs(got[i]-want[i]) > 1e-12 {
					t.Errorf("%s %+v: token %d has probability %v, want %v", name, o, i, got[i], want[i])
					break
				}
			}
		}
	}
}

// TestSampleLargeVocabChiSquare draws from filtered vocabulary-sized logits
// and checks the frequencies. TestSupportLargeVocab checks this distribution
// exactly, so fewer draws than above suffice here, as long as every expected
// count is large enough for the chi-square approximation.
func TestSampleLargeVocabChiSquare(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	logits := make([]float32, 50304)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
	}
	o := SampleOptions{Temperature: 0.5, TopK: 20, TopP: 0.95}
	want := refDist(logits, o)
	s, _ := NewSampler(o, 11)
	const draws = 20_000
	for i, p := range want {
		if p > 0 && p*draws < 5 {
			t.Fatalf("token %d expects %.1f draws; the chi-square test needs >= 5", i, p*draws)
		}
	}
	counts := make([]int, len(logits))
	for range draws {
		tok, _ := s.Sample(logits)
		if want[tok] == 0 {
			t.Fatalf("sampled filtered-out token %d", tok)
		}
		counts[tok]++
	}
	stat, df := chiSquare(counts, want, draws)
	if df < 5 {
		t.Fatalf("only %d degrees of freedom; the test wants a wider support", df)
	}
	if crit := critical(df); stat > crit {
		t.Errorf("chi-square %.1f > %.1f (df %d)", stat, crit, df)
	}
}

func TestSampleSeeded(t *testing.T) {
	o := SampleOptions{Temperature: 1.5, TopP: 0.95}
	draw := func(seed uint64) []int {
		s, _ := NewSampler(o, seed)
		out := make([]int, 1000)
		for i := range out {
			out[i], _ = s.Sample(testLogits)
		}
		return out
	}
	a, b, c := draw(9), draw(9), draw(10)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different tokens")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 9 and 10 gave the same 1000 tokens")
	}
}

func TestGreedy(t *testing.T) {
	// Temperature is not needed (or checked) for greedy decoding.
	s, err := NewSampler(SampleOptions{Greedy: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Tie between 1 and 2: the lower index wins. logprob = 3 - log(e + 2e³ + e²).
	tok, lp := s.Sample([]float32{1, 3, 3, 2})
	if tok != 1 {
		t.Errorf("greedy picked %d, want 1", tok)
	}
	if math.Abs(lp-(-0.9175757955891974)) > 1e-12 {
		t.Errorf("greedy logprob %v, want -0.9175757955891974", lp)
	}
	tok, lp = s.Sample([]float32{float32(math.Inf(-1)), -7, float32(math.Inf(-1))})
	if tok != 1 || lp != 0 {
		t.Errorf("greedy over one finite logit: %d, %v; want 1, 0", tok, lp)
	}
	// Greedy ignores the filters: the argmax is the same with them.
	s, _ = NewSampler(SampleOptions{Greedy: true, Temperature: 0.1, TopK: 1, TopP: 0.1}, 0)
	if tok, _ := s.Sample([]float32{0, 5, 5}); tok != 1 {
		t.Errorf("greedy with filters picked %d, want 1", tok)
	}
}

func TestSampleLogprobHand(t *testing.T) {
	ln := func(x float64) float32 { return float32(math.Log(x)) }
	for _, c := range []struct {
		name   string
		o      SampleOptions
		logits []float32
		want   map[int]float64 // token → exact log-probability
	}{
		// Probabilities 1/4, 3/4.
		{"plain", SampleOptions{Temperature: 1}, []float32{0, ln(3)}, map[int]float64{0: math.Log(0.25), 1: math.Log(0.75)}},
		// Temperature 2 halves 2·ln 3: again 1/4, 3/4.
		{"temperature", SampleOptions{Temperature: 2}, []float32{0, 2 * ln(3)}, map[int]float64{0: math.Log(0.25), 1: math.Log(0.75)}},
		// Top-k 1 leaves one token of probability 1.
		{"top-k 1", SampleOptions{Temperature: 1, TopK: 1}, []float32{0, ln(3)}, map[int]float64{1: 0}},
		// Probabilities 0.6, 0.3, 0.1; top-p 0.85 keeps 0.6 and 0.3 (0.6 < 0.85,
		// 0.9 >= 0.85) and renormalises to 2/3, 1/3.
		{"top-p", SampleOptions{Temperature: 1, TopP: 0.85}, []float32{ln(6), ln(3), ln(1)}, map[int]float64{0: math.Log(2.0 / 3), 1: math.Log(1.0 / 3)}},
		// Top-p 0.5: 0.6 alone reaches it.
		{"top-p single", SampleOptions{Temperature: 1, TopP: 0.5}, []float32{ln(6), ln(3), ln(1)}, map[int]float64{0: 0}},
		// Exact boundary: two equal tokens, top-p 0.5. The first alone holds
		// exactly 0.5, which reaches p, so the second (the higher index of the
		// tie) is cut, as transformers cuts where the ascending cumulative
		// sum is <= 1-p.
		{"top-p exact half", SampleOptions{Temperature: 1, TopP: 0.5}, []float32{3, 3}, map[int]float64{0: 0}},
		// Four equal tokens, top-p 0.5: the two lowest ids, 1/2 each.
		{"top-p tie by index", SampleOptions{Temperature: 1, TopP: 0.5}, []float32{1, 1, 1, 1}, map[int]float64{0: math.Log(0.5), 1: math.Log(0.5)}},
		// Top-k 2 of (0.5, 0.3, 0.2) → 5/8, 3/8; top-p 0.6 then keeps 5/8 alone.
		{"top-k then top-p", SampleOptions{Temperature: 1, TopK: 2, TopP: 0.6}, []float32{ln(5), ln(3), ln(2)}, map[int]float64{0: 0}},
		// Top-k 2 then top-p 0.7: 5/8 < 0.7, so 3/8 stays too.
		{"top-k then top-p wider", SampleOptions{Temperature: 1, TopK: 2, TopP: 0.7}, []float32{ln(5), ln(3), ln(2)}, map[int]float64{0: math.Log(5.0 / 8), 1: math.Log(3.0 / 8)}},
	} {
		s, err := NewSampler(c.o, 5)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for range 2000 {
			tok, lp := s.Sample(c.logits)
			want, ok := c.want[tok]
			if !ok {
				t.Fatalf("%s: sampled token %d, outside %v", c.name, tok, c.want)
			}
			// The logits are float32 roundings of logarithms, so the
			// probabilities are exact to about 1e-7.
			if math.Abs(lp-want) > 3e-7 {
				t.Errorf("%s: token %d logprob %.9f, want %.9f", c.name, tok, lp, want)
			}
			seen[tok] = true
		}
		if len(seen) != len(c.want) {
			t.Errorf("%s: saw tokens %v in 2000 draws, want all of %v", c.name, seen, c.want)
		}
	}
}

func TestLogSoftmax(t *testing.T) {
	got := LogSoftmax([]float32{0, float32(math.Log(3)), float32(math.Inf(-1))})
	want := []float64{math.Log(0.25), math.Log(0.75), math.Inf(-1)}
	for i := range want {
		if !(math.Abs(got[i]-want[i]) < 1e-7 || got[i] == want[i]) {
			t.Errorf("LogSoftmax[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	// Large logits do not overflow.
	got = LogSoftmax([]float32{1000, 1000})
	if math.Abs(got[0]-math.Log(0.5)) > 1e-12 || got[0] != got[1] {
		t.Errorf("LogSoftmax(1000, 1000) = %v, want log 1/2 twice", got)
	}
}

func TestNewSamplerErrors(t *testing.T) {
	for _, o := range []SampleOptions{
		{Temperature: 0},
		{Temperature: -1},
		{Temperature: math.NaN()},
		{Temperature: math.Inf(1)},
		{Temperature: 1, TopK: -1},
		{Temperature: 1, TopP: -0.1},
		{Temperature: 1, TopP: 1.5},
		{Temperature: 1, TopP: math.NaN()},
		{Greedy: true, TopK: -1},
		{Greedy: true, TopP: 2},
	} {
		if _, err := NewSampler(o, 1); err == nil {
			t.Errorf("NewSampler accepted %+v", o)
		}
	}
	for _, o := range []SampleOptions{
		DefaultSampleOptions(),
		{Greedy: true},
		{Temperature: 0.01, TopK: 0, TopP: 0},
		{Temperature: 1, TopP: 1},
	} {
		if _, err := NewSampler(o, 1); err != nil {
			t.Errorf("NewSampler rejected %+v: %v", o, err)
		}
	}
}

func TestSamplePanics(t *testing.T) {
	s, _ := NewSampler(DefaultSampleOptions(), 1)
	inf := float32(math.Inf(1))
	for name, logits := range map[string][]float32{
		"empty":    {},
		"NaN":      {0, float32(math.NaN()), 1},
		"+Inf":     {0, inf},
		"all -Inf": {-inf, -inf},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s logits did not panic", name)
				}
			}()
			s.Sample(logits)
		}()
	}
}

func TestSampleNoAllocs(t *testing.T) {
	logits := make([]float32, 50304)
	for i := range logits {
		logits[i] = float32(i % 101)
	}
	s, _ := NewSampler(SampleOptions{Temperature: 1, TopK: 100, TopP: 0.9}, 1)
	if a := testing.AllocsPerRun(20, func() { s.Sample(logits) }); a != 0 {
		t.Errorf("Sample allocates %v times per call", a)
	}
}

// BenchmarkSample samples from 50304 logits (Pythia's vocabulary) with each
// filter.
//
//	go test -run '^$' -bench Sample ./policy/
func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 50304)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2.5)
	}
	for _, c := range []struct {
		name string
		o    SampleOptions
	}{
		{"greedy", SampleOptions{Greedy: true}},
		{"plain", SampleOptions{Temperature: 1}},
		{"top-k=50", SampleOptions{Temperature: 1, TopK: 50}},
		{"top-p=0.9", SampleOptions{Temperature: 1, TopP: 0.9}},
		{"top-k=50,top-p=0.9", SampleOptions{Temperature: 0.7, TopK: 50, TopP: 0.9}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, _ := NewSampler(c.o, 1)
			for b.Loop() {
				s.Sample(logits)
			}
		})
	}
}

// Logits with no distribution are an error naming the fault; a bug (here a
// missing sampler) panics, and is not dressed up as an error.
func TestSampleRowsErrorsAndPanics(t *testing.T) {
	s, err := NewSampler(SampleOptions{Temperature: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	toks, lps := make([]int, 1), make([]float64, 1)
	nan := float32(math.NaN())
	if _, err := sampleRows([]*Sampler{s}, []int{0}, []float32{0, nan, 1}, nil, 3, toks, lps); err == nil || !strings.Contains(err.Error(), "logit 1 is NaN") {
		t.Errorf("NaN logits: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a nil sampler became an error, not a panic")
		}
	}()
	sampleRows([]*Sampler{nil}, []int{0}, []float32{0, 1, 2}, nil, 3, toks, lps)
}
