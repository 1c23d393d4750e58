package toxeval

import (
	"fmt"
	"math"
)

// DefaultEvalFrac and DefaultSplitSeed are the official code's split:
// sklearn's train_test_split(all_prompts, test_size=0.2, random_state=0).
const (
	DefaultEvalFrac         = 0.2
	DefaultSplitSeed uint32 = 0
)

// Split reproduces sklearn's train_test_split(range(n), test_size=evalFrac,
// random_state=seed) exactly, so that the held-out rows are the ones the
// paper's official code evaluated on: with p =
// numpy.random.RandomState(seed).permutation(n), eval is p[:⌈evalFrac·n⌉]
// and train is the rest of p, both in permutation order (not file order),
// as train_test_split returns them. evalFrac must lie strictly between 0
// and 1 and leave at least one row on each side.
func Split(n int, evalFrac float64, seed uint32) (train, eval []int, err error) {
	if !(evalFrac > 0 && evalFrac < 1) {
		return nil, nil, fmt.Errorf("eval fraction %v: want a number strictly between 0 and 1", evalFrac)
	}
	// sklearn's _validate_shuffle_split: the test side is rounded up, the
	// train side takes the rest.
	nEval := int(math.Ceil(evalFrac * float64(n)))
	if nEval == 0 || nEval >= n {
		return nil, nil, fmt.Errorf("%d rows with eval fraction %v leave %d to evaluate and %d to train: both sides need at least one", n, evalFrac, nEval, n-nEval)
	}
	p := Permutation(n, seed)
	return p[nEval:], p[:nEval], nil
}

// Permutation is numpy.random.RandomState(seed).permutation(n): the legacy
// generator (MT19937 seeded by init_genrand) driving a Fisher–Yates shuffle
// from the end, each index drawn by masked rejection sampling.
func Permutation(n int, seed uint32) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	mt := newMT19937(seed)
	for i := n - 1; i >= 1; i-- {
		j := mt.interval(uint32(i))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// mt19937 is the Mersenne Twister as numpy's legacy RandomState runs it.
type mt19937 struct {
	mt  [624]uint32
	pos int
}

func newMT19937(seed uint32) *mt19937 {
	m := &mt19937{pos: 624}
	m.mt[0] = seed
	for i := 1; i < 624; i++ {
		m.mt[i] = 1812433253*(m.mt[i-1]^(m.mt[i-1]>>30)) + uint32(i)
	}
	return m
}

func (m *mt19937) next() uint32 {
	if m.pos >= 624 {
		for i := 0; i < 624; i++ {
			y := m.mt[i]&0x80000000 | m.mt[(i+1)%624]&0x7fffffff
			v := m.mt[(i+397)%624] ^ y>>1
			if y&1 != 0 {
				v ^= 0x9908b0df
			}
			m.mt[i] = v
		}
		m.pos = 0
	}
	y := m.mt[m.pos]
	m.pos++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// interval is numpy's random_interval for max < 2³²: a value in [0, max]
// drawn by masking to the smallest covering power of two and rejecting
// values above max. The draw count, not just the result, must match numpy
// for later draws to match too.
func (m *mt19937) interval(max uint32) uint32 {
	if max == 0 {
		return 0
	}
	mask := max
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	for {
		if v := m.next() & mask; v <= max {
			return v
		}
	}
}
