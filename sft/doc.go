// Package sft fine-tunes a GPT-NeoX policy on text with next-token
// cross-entropy: the training graph of package neox computes the loss and
// gradients on ONNX Runtime, AdamW updates the weights where they live (in
// Go on CPU, as an ONNX graph on the device on CUDA), and policy.Training
// owns the sessions that do both.
//
// A run writes, in its output folder, checkpoints in Hugging Face format
// (config.json + model.safetensors) with the optimiser state and a
// trainer_state.json beside them, and metrics.jsonl, through package
// checkpoint. A resumed run replays the same batch order from the same seed,
// so its losses equal those of an uninterrupted run; it refuses changed
// settings.
package sft
