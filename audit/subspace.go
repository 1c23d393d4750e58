package audit

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"irl/rewardhead"
)

// moments are the training rows' mean and scatter Σ (x − μ)(x − μ)ᵀ.
type moments struct {
	n, dim  int
	mu      []float64
	scatter *mat.SymDense
	trace   float64
}

func rowsOf(fs []*rewardhead.Features) [][]float32 {
	var all [][]float32
	for _, f := range fs {
		for i := 0; i < f.N; i++ {
			all = append(all, f.Row(i))
		}
	}
	return all
}

func momentsOf(all [][]float32, dim int) moments {
	m := moments{n: len(all), dim: dim, mu: make([]float64, dim)}
	for _, r := range all {
		for j, x := range r {
			m.mu[j] += float64(x)
		}
	}
	for j := range m.mu {
		m.mu[j] /= float64(len(all))
	}
	// The centred rows as one matrix: one symmetric rank-k product, not a
	// rank-one update a row.
	x := mat.NewDense(len(all), dim, nil)
	for i, r := range all {
		for j, v := range r {
			x.Set(i, j, float64(v)-m.mu[j])
		}
	}
	m.scatter = mat.NewSymDense(dim, nil)
	m.scatter.SymOuterK(1, x.T())
	for j := 0; j < dim; j++ {
		m.trace += m.scatter.At(j, j)
	}
	return m
}

// distances is each row's Mahalanobis distance² from the training
// features: their covariance, plus a ridge of ridge × the mean variance on
// the diagonal, which keeps it finite. Nil when that is singular (every
// training row the same).
func distances(train []*rewardhead.Features, rows *rewardhead.Features, ridge float64) []float64 {
	dim := train[0].D
	m := momentsOf(rowsOf(train), dim)
	cov := mat.NewSymDense(dim, nil)
	lam := ridge * m.trace / float64(m.n*dim)
	for i := 0; i < dim; i++ {
		for j := i; j < dim; j++ {
			cov.SetSym(i, j, m.scatter.At(i, j)/float64(m.n))
		}
		cov.SetSym(i, i, cov.At(i, i)+lam)
	}
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		return nil
	}
	v := make([]float64, dim)
	var s mat.VecDense
	d := make([]float64, 0, rows.N)
	for i := 0; i < rows.N; i++ {
		for j, x := range rows.Row(i) {
			v[j] = float64(x) - m.mu[j]
		}
		x := mat.NewVecDense(dim, v)
		if err := ch.SolveVecTo(&s, x); err != nil {
			d = append(d, math.Inf(1))
			continue
		}
		d = append(d, mat.Dot(x, &s))
	}
	return d
}

// looLimit is how far a new text of the demonstrations' kind lies from
// them: for each distinct training text, its distance² (as distances
// measures it) from all the other training texts, its own copies left out,
// and the q-quantile of those.
//
// Each left-out distance comes in closed form from one eigendecomposition
// of the whole scatter, so the cost is one D³ factorisation and D² a
// distinct text, not a factorisation each (which took about an hour for
// 2,800 texts of 512 features). Leaving out the k copies of x takes
// kN/(N−k)·uuᵀ from the scatter (u = x − μ) and moves x's offset from the
// mean to N/(N−k)·u; with A the rest's ridged covariance before the
// rank-one part, Sherman–Morrison gives the distance² as
// (N/(N−k))²·q/(1 − c·q), q = uᵀA⁻¹u, c = kN/(N−k)². A text that carries
// nearly all the scatter, where those differences cancel, is measured
// directly (leftOut).
func looLimit(train []*rewardhead.Features, q float64) float64 {
	all := rowsOf(train)
	if len(all) == 0 {
		return math.Inf(1)
	}
	dim := len(all[0])
	m := momentsOf(all, dim)
	var eig mat.EigenSym
	if !eig.Factorize(m.scatter, true) {
		return math.Inf(1)
	}
	e := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	// Identical rows (one text written several times) are one text.
	key := func(r []float32) string {
		b := make([]byte, 4*len(r))
		for i, x := range r {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return string(b)
	}
	count := map[string]int{}
	var first [][]float32
	for _, r := range all {
		k := key(r)
		if count[k] == 0 {
			first = append(first, r)
		}
		count[k]++
	}
	n := float64(m.n)
	u := mat.NewVecDense(dim, nil)
	var z mat.VecDense
	var ds []float64
	for _, r := range first {
		k := float64(count[key(r)])
		rest := n - k
		if rest < 2 {
			continue
		}
		var uu float64
		for j, x := range r {
			v := float64(x) - m.mu[j]
			u.SetVec(j, v)
			uu += v * v
		}
		// The rest's trace is a difference of two sums, and the closed
		// form's 1 − c·q another: where x carries nearly all the scatter
		// (or the rest are one point, with none) they are rounding, and x
		// is measured from the rest directly.
		trest := m.trace - k*n/rest*uu
		if !(trest > 1e-6*m.trace) {
			if d, ok := leftOut(all, r, dim); ok {
				ds = append(ds, d)
			}
			continue
		}
		lam := ridge * trest / (rest * float64(dim))
		z.MulVec(vecs.T(), u)
		var qd float64
		for i, ev := range e {
			qd += z.AtVec(i) * z.AtVec(i) / (math.Max(ev, 0)/rest + lam)
		}
		c := k * n / (rest * rest)
		if 1-c*qd < 1e-6 {
			if d, ok := leftOut(all, r, dim); ok {
				ds = append(ds, d)
			}
			continue
		}
		f := n / rest
		ds = append(ds, f*f*qd/(1-c*qd))
	}
	if len(ds) == 0 {
		return math.Inf(1)
	}
	sort.Float64s(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// leftOut is x's distance² from the rows of all that differ from it, with
// their covariance built and factorised afresh; false when there is none to
// measure by.
func leftOut(all [][]float32, x []float32, dim int) (float64, bool) {
	var rest []float32
	n := 0
	for _, r := range all {
		if !slices.Equal(r, x) {
			rest = append(rest, r...)
			n++
		}
	}
	if n < 2 {
		return 0, false
	}
	f, err := rewardhead.NewFeatures("rest", n, dim, rest, nil, nil)
	if err != nil {
		return 0, false
	}
	one, err := rewardhead.NewFeatures("one", 1, dim, append([]float32(nil), x...), nil, nil)
	if err != nil {
		return 0, false
	}
	d := distances([]*rewardhead.Features{f}, one, ridge)
	if d == nil || math.IsInf(d[0], 0) {
		return 0, false
	}
	return d[0], true
}
