// Package weights reads the tensors of Hugging Face checkpoint folders:
// model.safetensors (F32, F16, BF16, F64; F32 loads as a view of the file's
// memory), pytorch_model.bin (torch.save's zip format, read without running
// any pickle code), and their sharded indexes. Every model family in this
// project (GPT-NeoX policies, RoBERTa classifiers) loads through it; the model
// packages check names and shapes against their configurations.
package weights
