package neox

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
)

// Init makes a randomly initialised model the way transformers does for
// GPT-NeoX: linear and embedding weights ~ N(0, initializer_range²), biases 0,
// layer norms weight 1 and bias 0. The same seed gives the same weights.
func Init(cfg Config, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InitializerRange == 0 {
		cfg.InitializerRange = 0.02
	}
	specs := cfg.ParamSpecs()
	m := &Model{Config: cfg, Params: make(map[string]*Param, len(specs))}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var mu sync.Mutex
	for i, s := range specs {
		p := &Param{Shape: s.Shape, Data: make([]float32, Numel(s.Shape))}
		mu.Lock()
		m.Params[s.Name] = p
		mu.Unlock()
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, name string) {
			defer func() { <-sem; wg.Done() }()
			switch {
			case strings.HasSuffix(name, "layernorm.weight") || strings.HasSuffix(name, "layer_norm.weight"):
				for j := range p.Data {
					p.Data[j] = 1
				}
			case strings.HasSuffix(name, ".bias"):
			default:
				// One stream per tensor keeps the result independent of
				// scheduling.
				r := rand.New(rand.NewPCG(seed, uint64(i)))
				std := cfg.InitializerRange
				for j := range p.Data {
					p.Data[j] = float32(r.NormFloat64() * std)
				}
			}
		}(i, s.Name)
	}
	wg.Wait()
	return m, nil
}
