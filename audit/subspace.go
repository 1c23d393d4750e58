package audit

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"

	"irl/rewardhead"
)

// distances is each row's Mahalanobis distance² from the training
// features (a ridge of ridge × the mean variance keeps it finite), for
// each of rows, and the training rows' own.
func distances(train []*rewardhead.Features, rows *rewardhead.Features, ridge float64) (d, own []float64) {
	dim := train[0].D
	var all [][]float32
	for _, f := range train {
		for i := 0; i < f.N; i++ {
			all = append(all, f.Row(i))
		}
	}
	mu := make([]float64, dim)
	for _, r := range all {
		for j, x := range r {
			mu[j] += float64(x)
		}
	}
	for j := range mu {
		mu[j] /= float64(len(all))
	}
	cov := mat.NewSymDense(dim, nil)
	v := make([]float64, dim)
	for _, r := range all {
		for j, x := range r {
			v[j] = float64(x) - mu[j]
		}
		cov.SymRankOne(cov, 1/float64(len(all)), mat.NewVecDense(dim, v))
	}
	var tr float64
	for j := 0; j < dim; j++ {
		tr += cov.At(j, j)
	}
	for j := 0; j < dim; j++ {
		cov.SetSym(j, j, cov.At(j, j)+ridge*tr/float64(dim))
	}
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		return nil, nil
	}
	dist := func(r []float32) float64 {
		for j, x := range r {
			v[j] = float64(x) - mu[j]
		}
		x := mat.NewVecDense(dim, append([]float64(nil), v...))
		var s mat.VecDense
		if err := ch.SolveVecTo(&s, x); err != nil {
			return 0
		}
		return mat.Dot(x, &s)
	}
	for _, r := range all {
		own = append(own, dist(r))
	}
	for i := 0; i < rows.N; i++ {
		d = append(d, dist(rows.Row(i)))
	}
	return d, own
}

// looLimit is how far a new text of the demonstrations' kind lies from
// them: for each distinct training text, its distance² from all the other
// training texts (its own copies left out), and the q-quantile of those.
func looLimit(train []*rewardhead.Features, q float64) float64 {
	var all [][]float32
	for _, f := range train {
		for i := 0; i < f.N; i++ {
			all = append(all, f.Row(i))
		}
	}
	key := func(r []float32) string { return fmt.Sprint(r) }
	groups := map[string][]int{}
	var order []string
	for i, r := range all {
		k := key(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var ds []float64
	for _, k := range order {
		idx := groups[k]
		skip := map[int]bool{}
		for _, i := range idx {
			skip[i] = true
		}
		var rest [][]float32
		for i, r := range all {
			if !skip[i] {
				rest = append(rest, r)
			}
		}
		if len(rest) < 2 {
			continue
		}
		d := len(all[0])
		x := make([]float32, 0, len(rest)*d)
		for _, r := range rest {
			x = append(x, r...)
		}
		f, err := rewardhead.NewFeatures("rest", len(rest), d, x, nil, nil)
		if err != nil {
			continue
		}
		one, _ := rewardhead.NewFeatures("one", 1, d, append([]float32(nil), all[idx[0]]...), nil, nil)
		dd, _ := distances([]*rewardhead.Features{f}, one, ridge)
		if len(dd) == 1 {
			ds = append(ds, dd[0])
		}
	}
	if len(ds) == 0 {
		return math.Inf(1)
	}
	sort.Float64s(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}
