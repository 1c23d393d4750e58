// Package policy runs the GPT-NeoX graphs that package neox builds, on
// ONNX Runtime: forward passes (Runner), training steps and their optimiser
// (Trainer, Optimizer, and Training, which owns a run's sessions), and
// generation over a key/value cache (Generator, on a Decoder or a
// CachedDecoder, drawing with a Sampler).
//
// The data's path is model → graph + session → results:
//
//	m, err := neox.Load("pythia-70m/")
//	r, err := policy.NewRunner(m, neox.ForwardOptions{Logits: true}, onnx.Options{}, nil)
//	defer r.Destroy()
//	out, err := r.Forward(&neox.Batch{B: 1, S: 3, InputIDs: []int64{510, 3158, 8516}})
//	logits := out[neox.LogitsOutput].Data // [B,S,V]
//
// Every session runs through an IoBinding (onnx.BoundSession), on CPU and
// on CUDA alike: the weights that graphs take as inputs, the gradients and
// the key/value caches are bound where they live, in a ParamStore (views
// of Go memory on CPU, device memory on CUDA) that the sessions of a
// training run share, and a run's small inputs and outputs are bound as
// tensors over Go slices, which ONNX Runtime reads and writes in place on
// CPU and copies across on CUDA. Only what the caller reads (the loss,
// log-probs, pooled features, a decode step's logits or just their
// statistics) crosses to Go. The optimiser runs there too (Optimizer).
package policy
