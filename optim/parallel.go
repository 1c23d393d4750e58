package optim

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkSize is the most elements one goroutine handles at a time. Chunks are
// cut at fixed offsets within each tensor, never by worker count, so that
// reductions summed per chunk and then in chunk order give the same bits
// whatever GOMAXPROCS is.
const chunkSize = 1 << 15

// chunk is elements [lo, hi) of parameter param.
type chunk struct{ param, lo, hi int }

func chunksOf(params []*Param) []chunk {
	var cs []chunk
	for i, p := range params {
		for lo := 0; lo < len(p.Data); lo += chunkSize {
			cs = append(cs, chunk{i, lo, min(lo+chunkSize, len(p.Data))})
		}
	}
	return cs
}

// forEach calls fn for every chunk, from up to GOMAXPROCS goroutines that take
// chunks in turn so that large and small tensors balance out. fn must only
// touch its own chunk's elements and result slot.
func forEach(cs []chunk, fn func(i int, c chunk)) {
	workers := min(runtime.GOMAXPROCS(0), len(cs))
	if workers <= 1 {
		for i, c := range cs {
			fn(i, c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cs) {
					return
				}
				fn(i, cs[i])
			}
		})
	}
	wg.Wait()
}
