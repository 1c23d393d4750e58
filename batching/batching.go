package batching

import (
	"fmt"
	"sort"
)

// Sorted calls fn for consecutive groups of at most size row indices, in
// order of increasing length (stable, so equal lengths keep their order),
// with each group's longest length. It stops at fn's first error, which it
// returns naming the group.
func Sorted(lengths []int, size int, fn func(rows []int, longest int) error) error {
	if size <= 0 {
		panic(fmt.Sprintf("batching: batch size %d", size))
	}
	order := make([]int, len(lengths))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return lengths[order[a]] < lengths[order[b]] })
	for lo := 0; lo < len(order); lo += size {
		hi := min(lo+size, len(order))
		rows := order[lo:hi]
		longest := lengths[rows[len(rows)-1]]
		if err := fn(rows, longest); err != nil {
			return fmt.Errorf("batch of sorted rows %d…%d (length %d): %w", lo, hi-1, longest, err)
		}
	}
	return nil
}

// RightPad lays out the rows of seqs listed in rows as a [len(rows), s] batch
// padded on the right with pad: ids, and a mask with 1 on real tokens.
func RightPad(seqs [][]int64, rows []int, s int, pad int64) (ids, mask []int64) {
	b := len(rows)
	ids = make([]int64, b*s)
	mask = make([]int64, b*s)
	for r, i := range rows {
		row := ids[r*s : (r+1)*s]
		n := copy(row, seqs[i])
		for j := range n {
			mask[r*s+j] = 1
		}
		for j := n; j < s; j++ {
			row[j] = pad
		}
	}
	return ids, mask
}
