// Package checkpoint keeps a training run's folder: checkpoints that are
// written whole or not at all, the pointer to the newest one, the settings a
// resumed run must share, and the metrics log. Supervised fine-tuning and PPO
// both use it, so both resume the same way.
//
// A run folder holds
//
//	checkpoint-NNNNNN/   a Hugging Face model folder (config.json,
//	                     model.safetensors with every tensor the model holds),
//	                     optimizer.safetensors, trainer_state.json, and any
//	                     extra files (tokenizer.json)
//	last-checkpoint      the newest complete checkpoint's name, written last
//	metrics.jsonl        one JSON object per line, each with a "step"
//
// Each checkpoint is built in a temporary folder and renamed into place, so a
// kill leaves either the whole checkpoint or none of it; temporary files that
// a kill left behind are removed when the run is next opened.
package checkpoint
