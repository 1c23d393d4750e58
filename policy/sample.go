package policy

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SampleOptions chooses how Sampler picks tokens. The filters follow Hugging
// Face transformers' generate: temperature scales the logits first, then
// top-k, then top-p filter them, and the token is drawn from the
// renormalised remainder.
type SampleOptions struct {
	// Greedy picks the most probable token; the other fields are ignored
	// (beyond range checks). Ties go to the lowest index, as torch.argmax.
	Greedy bool
	// Temperature divides the logits; it must be > 0 unless Greedy. There
	// is no implicit default: a zero would mean the caller forgot it, and
	// Hugging Face rejects it too. DefaultSampleOptions sets 1.
	Temperature float64
	// TopK keeps the TopK largest logits, and every logit tied with the
	// smallest of them (as transformers' TopKLogitsWarper, which keeps
	// scores >= the k-th largest). 0, or >= the vocabulary, is off.
	TopK int
	// TopP keeps the smallest set of most probable tokens whose cumulative
	// probability reaches TopP, and always at least one: a token is kept if
	// the tokens more probable than it hold less than TopP. Among tokens of
	// equal probability the lower index counts as more probable. It must
	// lie in [0, 1]; 0 and 1 are off.
	TopP float64
}

// CheckTemperature is the one rule for a temperature, wherever one is
// taken (sampling, log-probs for PPO, a scoring forward): positive and
// finite. 0 is an error, never a default standing in for a forgotten value.
func CheckTemperature(t float64) error {
	if !(t > 0) || math.IsInf(t, 1) {
		return fmt.Errorf("temperature %v must be positive and finite", t)
	}
	return nil
}

// DefaultSampleOptions samples from the model's distribution unchanged:
// temperature 1, no top-k or top-p.
func DefaultSampleOptions() SampleOptions { return SampleOptions{Temperature: 1} }

// Validate reports the first option out of range. Options usually come from
// flags, so they are checked as data.
func (o SampleOptions) Validate() error {
	if o.TopK < 0 {
		return fmt.Errorf("sampling: top-k %d is negative (0 turns it off)", o.TopK)
	}
	if !(o.TopP >= 0 && o.TopP <= 1) {
		return fmt.Errorf("sampling: top-p %v outside [0, 1] (0 or 1 turns it off)", o.TopP)
	}
	if o.Greedy {
		return nil
	}
	if err := CheckTemperature(o.Temperature); err != nil {
		return fmt.Errorf("sampling: %w (use greedy for argmax)", err)
	}
	return nil
}

// Sampler picks next tokens from logits. It is seeded: the same options,
// seed and sequence of logits give the same tokens. It reuses buffers
// between calls, so Sample does not allocate once they have grown to the
// vocabulary, and a Sampler is not safe for concurrent use.
type Sampler struct {
	opt SampleOptions
	rng *rand.Rand
	// ids holds candidate token ids; selectTop reorders it in place.
	ids []int32
	// w holds unnormalised probabilities exp((l - lmax)/T), indexed by token id.
	w []float64
	// heap holds kthLargest's heap.
	heap []float32
}

// NewSampler returns a sampler with the given options and seed, or an error
// for options out of range.
func NewSampler(o SampleOptions, seed uint64) (*Sampler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// PCG takes two words of seed; the second is a fixed odd constant so that
	// callers need to manage only one.
	return &Sampler{opt: o, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}, nil
}

// Options returns the sampler's options.
func (s *Sampler) Options() SampleOptions { return s.opt }

// Sample picks a token from one position's logits and returns it with its
// log-probability.
//
// The log-probability is that of the distribution actually sampled from:
// after temperature, top-k and top-p filtering and renormalisation. It is
// the probability of the choice the sampler made, which is what a sampled
// sequence's likelihood under the sampling process needs; to score a token
// under the model itself, take LogSoftmax of the raw logits. For Greedy it is
// the log-softmax of the raw logits at the argmax.
//
// Sample panics if logits is empty, holds a NaN or +Inf, or is all -Inf:
// no distribution exists then, and such logits mean a broken model rather
// than data to recover from. -Inf entries (masked tokens) are never chosen.
func (s *Sampler) Sample(logits []float32) (token int, logprob float64) {
	token, logprob, err := s.draw(logits)
	if err != nil {
		panic(err)
	}
	return token, logprob
}

// draw is Sample, with logits that have no distribution an error: the
// generator's rows come from a model, whose outputs are data.
func (s *Sampler) draw(logits []float32) (token int, logprob float64, err error) {
	best, err := distArgmax(logits)
	if err != nil {
		return 0, 0, err
	}
	if s.opt.Greedy {
		return best, -logSumExp(logits, float64(logits[best])), nil
	}
	ids, total := s.support(logits, best)
	u := s.rng.Float64() * total
	if ids == nil {
		token = pickAll(s.w[:len(logits)], u)
	} else {
		token = pick(ids, s.w, u)
	}
	return token, (float64(logits[token])-float64(logits[best]))*(1/s.opt.Temperature) - math.Log(total), nil
}

// greedy is Sample for a greedy sampler over a vocabulary of v given log Σ
// exp(logits), lse, the largest logit, top, and its index, best, as the
// decode graphs compute them: no pass over the vocabulary, whose logits may
// be nil then. A finite lse vouches for the logits (a NaN or +Inf logit, or
// all −Inf, makes it NaN or infinite); otherwise the logits, which the
// caller must then give, are scanned in Go, which names the fault.
func (s *Sampler) greedy(logits []float32, lse, top float32, best int64, v int) (token int, logprob float64, err error) {
	l := float64(lse)
	if math.IsNaN(l) || math.IsInf(l, 0) || best < 0 || best >= int64(v) {
		b, err := distArgmax(logits) // names the fault
		if err != nil {
			return 0, 0, err
		}
		return b, -logSumExp(logits, float64(logits[b])), nil
	}
	return int(best), float64(top) - l, nil
}

// support fills s.w with the unnormalised probabilities of the distribution
// Sample draws from, and returns the tokens that carry them (nil meaning
// every token) and their total, summed in the order a pick walks them.
func (s *Sampler) support(logits []float32, best int) (ids []int32, total float64) {
	n := len(logits)
	if cap(s.w) < n {
		s.w = make([]float64, n)
	}
	w := s.w[:n]
	// exp((l - lmax)/T): the difference of two float32s is exact in float64
	// unless their exponents are far apart, and one multiplication by 1/T
	// is cheaper than a division per token.
	lmax, invT := float64(logits[best]), 1/s.opt.Temperature
	k := s.opt.TopK
	if k >= n {
		k = 0
	}
	p := s.opt.TopP
	if p >= 1 {
		p = 0
	}
	if k == 0 && p == 0 {
		for i, l := range logits {
			e := math.Exp((float64(l) - lmax) * invT)
			w[i] = e
			total += e
		}
		return nil, total
	}

	if cap(s.ids) < n {
		s.ids = make([]int32, n)
	}
	// Dividing by t > 0 preserves order, so top-k selects on the raw logits
	// and only its survivors need exponentials.
	switch {
	case k > 0 && k <= heapTopK:
		kth := s.kthLargest(logits, k)
		ids = s.ids[:0]
		for i, l := range logits {
			if l >= kth {
				ids = append(ids, int32(i))
			}
		}
	case k > 0:
		ids = s.ids[:n]
		for i := range ids {
			ids[i] = int32(i)
		}
		_, e, _ := selectTop(ids, logits, nil, float64(k))
		ids = ids[:e]
	}
	if ids != nil {
		for _, i := range ids {
			e := math.Exp((float64(logits[i]) - lmax) * invT)
			w[i] = e
			total += e
		}
	} else {
		for i, l := range logits {
			e := math.Exp((float64(l) - lmax) * invT)
			w[i] = e
			total += e
		}
		// Top-p alone: a token of probability q has at most n·q of mass at
		// or below its rank, so below (1-p)/n it is certainly cut. Dropping
		// those (with a factor 2 to spare against rounding) before the
		// selection usually leaves a small fraction of the vocabulary.
		floor := 0.5 * (1 - p) * total / float64(n)
		ids = s.ids[:0]
		for i, x := range w {
			if x >= floor {
				ids = append(ids, int32(i))
			}
		}
	}
	if p > 0 {
		need := p * total
		g, e, above := selectTop(ids, logits, w, need)
		// Equal probabilities straddle the cut: the lower ids count as more
		// probable, as a stable descending sort would order them.
		tied := ids[g:e]
		slices.Sort(tied)
		c := 0
		for c < len(tied) && above < need {
			above += w[tied[c]]
			c++
		}
		ids = ids[:g+c]
		total = 0
		for _, i := range ids {
			total += w[i]
		}
	}
	return ids, total
}

// heapTopK is the largest top-k found by kthLargest's heap; larger ones use
// selectTop, whose cost does not grow with k.
const heapTopK = 512

// kthLargest returns the k-th largest logit (0 < k < len(logits)) from a
// min-heap of the k largest seen so far. Once the heap holds typical top
// values nearly every logit fails a single comparison with its minimum, so
// for small k this costs about one pass, well below a quickselect.
func (s *Sampler) kthLargest(logits []float32, k int) float32 {
	if cap(s.heap) < k {
		s.heap = make([]float32, k)
	}
	h := s.heap[:k]
	copy(h, logits[:k])
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for _, l := range logits[k:] {
		if l > h[0] {
			h[0] = l
			siftDown(h, 0)
		}
	}
	return h[0]
}

// siftDown restores the min-heap order below h[i].
func siftDown(h []float32, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[i] <= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// selectTop partially orders a by descending key. For the key value t at
// which the cumulative weight of the largest keys first reaches need, it
// returns g and e such that a[:g] hold the keys > t, a[g:e] the keys == t
// and a[e:] the keys < t, with above the weight of a[:g], so that
// above < need <= above + weight(a[g:e]). When rounding leaves the whole of
// a short of need, it returns g = e = len(a). Weights are w[id], or 1 each
// when w is nil. It runs in expected linear time (quickselect with a
// three-way partition, so ties cannot make it quadratic).
func selectTop(a []int32, key []float32, w []float64, need float64) (g, e int, above float64) {
	lo, hi := 0, len(a)
	for lo < hi {
		pv := medianKey(a[lo:hi], key)
		gt, eq := partition3(a[lo:hi], key, pv)
		mg := weightOf(a[lo:lo+gt], w)
		if above+mg >= need {
			hi = lo + gt
			continue
		}
		me := weightOf(a[lo+gt:lo+gt+eq], w)
		if above+mg+me >= need {
			return lo + gt, lo + gt + eq, above + mg
		}
		above += mg + me
		lo += gt + eq
	}
	return lo, lo, above
}

// medianKey is the median of the keys at the ends and middle of a, so that
// sorted and reverse-sorted logits still split evenly.
func medianKey(a []int32, key []float32) float32 {
	x, y, z := key[a[0]], key[a[len(a)/2]], key[a[len(a)-1]]
	if x > y {
		x, y = y, x
	}
	if y > z {
		y = z
	}
	return max(x, y)
}

// partition3 reorders a into keys > pv, == pv, < pv and returns the lengths
// of the first two groups.
func partition3(a []int32, key []float32, pv float32) (gt, eq int) {
	lt, i, hi := 0, 0, len(a)
	for i < hi {
		k := key[a[i]]
		switch {
		case k > pv:
			a[lt], a[i] = a[i], a[lt]
			lt++
			i++
		case k < pv:
			hi--
			a[i], a[hi] = a[hi], a[i]
		default:
			i++
		}
	}
	return lt, hi - lt
}

func weightOf(a []int32, w []float64) float64 {
	if w == nil {
		return float64(len(a))
	}
	var s float64
	for _, i := range a {
		s += w[i]
	}
	return s
}

// pick returns the first id whose cumulative weight exceeds u. Zero weights
// never exceed it, so masked tokens are never picked; if rounding leaves u at
// or above the total, the last id of positive weight is returned.
func pick(ids []int32, w []float64, u float64) int {
	var acc float64
	last := -1
	for _, i := range ids {
		acc += w[i]
		if u < acc {
			return int(i)
		}
		if w[i] > 0 {
			last = int(i)
		}
	}
	return last
}

// pickAll is pick over every token id.
func pickAll(w []float64, u float64) int {
	var acc float64
	last := -1
	for i, x := range w {
		acc += x
		if u < acc {
			return i
		}
		if x > 0 {
			last = i
		}
	}
	return last
}

// argmax returns the index of the largest logit, the lowest on ties, and
// panics on logits with no distribution (see Sample).
func argmax(logits []float32) int {
	best, err := distArgmax(logits)
	if err != nil {
		panic(err)
	}
	return best
}

// distArgmax is argmax with logits that have no distribution an error.
func distArgmax(logits []float32) (int, error) {
	if len(logits) == 0 {
		return 0, errors.New("policy: sampling from empty logits")
	}
	if len(logits) > math.MaxInt32 {
		return 0, fmt.Errorf("policy: %d logits exceed the int32 token ids", len(logits))
	}
	best := 0
	for i, l := range logits {
		if l != l {
			return 0, fmt.Errorf("policy: logit %d is NaN", i)
		}
		if l > logits[best] {
			best = i
		}
	}
	if l := float64(logits[best]); math.IsInf(l, 1) {
		return 0, fmt.Errorf("policy: logit %d is +Inf", best)
	} else if math.IsInf(l, -1) {
		return 0, errors.New("policy: every logit is -Inf: no token can be sampled")
	}
	return best, nil
}

// logSumExp is log Σ exp(l - m), summed in float64.
func logSumExp(logits []float32, m float64) float64 {
	var s float64
	for _, l := range logits {
		s += math.Exp(float64(l) - m)
	}
	return math.Log(s)
}

// LogSoftmax returns log softmax(logits), computed in float64 with the
// maximum subtracted so that large logits do not overflow. -Inf logits give
// -Inf. It panics, as Sample does, on logits that have no distribution.
func LogSoftmax(logits []float32) []float64 {
	m := float64(logits[argmax(logits)])
	lse := m + logSumExp(logits, m)
	out := make([]float64, len(logits))
	for i, l := range logits {
		out[i] = float64(l) - lse
	}
	return out
}
