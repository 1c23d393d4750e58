// Package optim updates model parameters held as named float32 tensors: the
// AdamW optimiser, clipping by global gradient norm, learning-rate schedules,
// and saving and restoring optimiser state so that training resumes exactly.
//
// A training step is
//
//	norm := optim.ClipGradNorm(params, 1.0)
//	opt.Step(sched.LR(opt.Steps()))
//
// Work is split into chunks at fixed offsets within each tensor and spread
// over GOMAXPROCS goroutines. Every result (parameters, moments, norms) is
// bit-for-bit the same for any GOMAXPROCS and any scheduling.
package optim
