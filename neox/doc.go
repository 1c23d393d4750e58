// Package neox builds GPT-NeoX (the Pythia architecture) as ONNX graphs: its
// Hugging Face configuration and checkpoints, random initialisation, and
// every graph that runs it. Package policy runs them.
//
// The data's path is config → weights → graph:
//
//	m, err := neox.Load("pythia-70m/")                                 // config.json + weights
//	fg, err := neox.BuildForward(m, neox.ForwardOptions{Logits: true}) // the inference graph
//
// A model on disk has one handle, Source (neox.Open): its path (a run
// folder resolved), its kind (folder or .onnx), its configuration and its
// fingerprint, each found once; consumers that identify or check a model
// (features, reward heads, sft, ppo, the experiments) read them there.
//
// Graphs are built from the blocks in blocks.go, each forward beside its
// hand-derived backward, and from ONNX Runtime's fused kernels (fused.go)
// where Fused allows them. The inference graph (BuildForward), the
// training graphs (BuildTrain), which run the same forward and return
// every parameter's gradient, and the decode graphs (BuildDecode,
// BuildCachedDecode), which run it a few tokens at a time over a
// key/value cache, share one builder (builder.go); their inputs and
// outputs are named in names.go, by which the sessions that run them bind.
package neox
