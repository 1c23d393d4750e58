package rewardhead

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// KendallTauB returns Kendall's τ-b between x and y, which corrects τ for
// ties in either variable:
//
//	τ_b = (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂))
//
// with n₀ = n(n−1)/2 pairs, n₁ and n₂ the pairs tied in x and in y. It runs
// in O(n log n) by Knight's method: sort by (x, y), then count the
// discordant pairs as the exchanges a merge sort by y makes. It is undefined
// when either variable is constant or there are fewer than two points. It
// panics if the lengths differ.
func KendallTauB(x, y []float64) Value {
	if len(x) != len(y) {
		panic("rewardhead: KendallTauB length mismatch")
	}
	n := len(x)
	if n < 2 {
		return Undefined("Kendall τ needs at least two rows")
	}
	if hasNaN(x, y) {
		return Undefined("Kendall τ is undefined when a variable includes NaN")
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if x[i] != x[j] {
			return x[i] < x[j]
		}
		return y[i] < y[j]
	})
	var n1, n3 int64 // pairs tied in x; pairs tied in both
	for i := 0; i < n; {
		j := i + 1
		for j < n && x[idx[j]] == x[idx[i]] {
			j++
		}
		n1 += pairs(j - i)
		for k := i; k < j; {
			l := k + 1
			for l < j && y[idx[l]] == y[idx[k]] {
				l++
			}
			n3 += pairs(l - k)
			k = l
		}
		i = j
	}
	ys := make([]float64, n)
	for k, i := range idx {
		ys[k] = y[i]
	}
	swaps := mergeCount(ys, make([]float64, n))
	var n2 int64 // pairs tied in y
	for i := 0; i < n; {
		j := i + 1
		for j < n && ys[j] == ys[i] {
			j++
		}
		n2 += pairs(j - i)
		i = j
	}
	n0 := pairs(n)
	if n0 == n1 {
		return Undefined("Kendall τ-b is undefined when the first variable is constant")
	}
	if n0 == n2 {
		return Undefined("Kendall τ-b is undefined when the second variable is constant")
	}
	num := float64(n0-n1-n2+n3) - 2*float64(swaps)
	return Defined(num / math.Sqrt(float64(n0-n1)*float64(n0-n2)))
}

func pairs(k int) int64 { return int64(k) * int64(k-1) / 2 }

// mergeCount sorts a ascending and returns the number of strictly inverted
// pairs (i < j, a[i] > a[j]). tmp has len(a).
func mergeCount(a, tmp []float64) int64 {
	n := len(a)
	if n < 2 {
		return 0
	}
	if n <= 16 {
		// Insertion sort counts the same inversions with less overhead.
		var c int64
		for i := 1; i < n; i++ {
			v := a[i]
			j := i
			for j > 0 && a[j-1] > v {
				a[j] = a[j-1]
				j--
				c++
			}
			a[j] = v
		}
		return c
	}
	m := n / 2
	c := mergeCount(a[:m], tmp[:m]) + mergeCount(a[m:], tmp[m:])
	i, j, k := 0, m, 0
	for i < m && j < n {
		if a[j] < a[i] {
			tmp[k] = a[j]
			c += int64(m - i)
			j++
		} else {
			tmp[k] = a[i]
			i++
		}
		k++
	}
	k += copy(tmp[k:], a[i:m])
	copy(tmp[k:], a[j:n])
	copy(a, tmp[:n])
	return c
}

// Ranks returns the 1-based ranks of x, giving tied values their average
// rank. NaNs rank below everything, each on its own.
func Ranks(x []float64) []float64 {
	n := len(x)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	// cmp.Compare orders NaN consistently, which a sort needs; it agrees
	// with < and > everywhere else.
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	r := make([]float64, n)
	for i := 0; i < n; {
		j := i + 1
		for j < n && x[idx[j]] == x[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of ranks i+1 … j
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// Pearson returns the Pearson correlation of x and y, undefined when either
// has zero variance or there are fewer than two points. It panics if the
// lengths differ.
func Pearson(x, y []float64) Value {
	if len(x) != len(y) {
		panic("rewardhead: Pearson length mismatch")
	}
	n := len(x)
	if n < 2 {
		return Undefined("correlation needs at least two rows")
	}
	if !allFinite(x, y) {
		return Undefined("correlation is undefined when a variable includes NaN or ±Inf")
	}
	// r is unchanged when either variable is scaled.
	x, y = scaled(x, scaleExp(x)), scaled(y, scaleExp(y))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, syy, sxy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		syy += dy * dy
		sxy += dx * dy
	}
	if sxx == 0 {
		return Undefined("correlation is undefined when the first variable has zero variance")
	}
	if syy == 0 {
		return Undefined("correlation is undefined when the second variable has zero variance")
	}
	r := sxy / math.Sqrt(sxx*syy)
	if !finite(r) {
		return Undefined("correlation overflows float64")
	}
	return Defined(math.Max(-1, math.Min(1, r)))
}

// Spearman returns Spearman's ρ: the Pearson correlation of the average
// ranks, which handles ties.
func Spearman(x, y []float64) Value {
	if len(x) != len(y) {
		panic("rewardhead: Spearman length mismatch")
	}
	if hasNaN(x, y) {
		return Undefined("Spearman's ρ is undefined when a variable includes NaN")
	}
	return Pearson(Ranks(x), Ranks(y))
}
