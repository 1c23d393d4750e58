package neox

import "fmt"

// The names that graphs and the sessions running them share: every input
// and output of the graphs this package builds, the parameters that are
// not the checkpoint's (the value head), and the shapes as ONNX Runtime
// takes them. A graph is built with these names and a runner binds its
// tensors by them, so they have one home.

// Graph input names. Every graph of this package takes all three, I64 [B,S].
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
)

// LogitsOutput names the logits output, F32 [B,S,V].
const LogitsOutput = "logits"

// HiddenOutput names hidden state i, F32 [B,S,D], in Hugging Face's
// convention: 0 is the embeddings, NumLayers is after the final layer norm.
func HiddenOutput(i int) string { return fmt.Sprintf("hidden_states.%d", i) }

// Training-graph input and output names.
const (
	// LabelsInput holds each position's target token, I64 [B,S].
	LabelsInput = "labels"
	// LossMaskInput weighs each position's loss, F32 [B,S].
	LossMaskInput = "loss_mask"
	// LossOutput is the scalar loss, F32 [1].
	LossOutput = "loss"
	// TokensInput holds the tokens whose log-probs the LogProb head returns, I64 [B,S].
	TokensInput = "tokens"
	// TemperatureInput is the LogProb head's temperature, F32 [1].
	TemperatureInput = "temperature"
	// LogProbsOutput, EntropyOutput and ValuesOutput are the LogProb head's
	// per-position outputs, F32 [B,S].
	LogProbsOutput = "logprobs"
	EntropyOutput  = "entropy"
	ValuesOutput   = "values"
	// The LogProb head's loss is Σ (c_lp·logprob + c_ent·entropy + c_v·value)
	// with these cotangents, F32 [B,S], supplied by the caller.
	LogProbsCotangent = "d_logprobs"
	EntropyCotangent  = "d_entropy"
	ValuesCotangent   = "d_values"
)

// Value-head parameter names (only in graphs with the LogProb head).
const (
	ValueHeadWeight = "value_head.weight" // [1,D]
	ValueHeadBias   = "value_head.bias"   // [1]
)

// GradName is the output name of a parameter's gradient.
func GradName(param string) string { return "grad." + param }

// PPO head inputs, F32 [B,S] unless noted: the rollout's log-probs and
// values, the (whitened) advantages and the returns at each scored position,
// the mask of positions that count, and the coefficients F32 [4]: cliprange,
// cliprange_value, vf_coef, ent_coef.
const (
	OldLogProbsInput = "old_logprobs"
	OldValuesInput   = "old_values"
	AdvantagesInput  = "advantages"
	ReturnsInput     = "returns"
	PPOCoefsInput    = "ppo_coefs"
	// PPOStatsOutput is F32 [6]: policy loss, value loss, mean entropy,
	// policy clip fraction, value clip fraction, approximate KL.
	PPOStatsOutput = "ppo_stats"
)

// PastKey names the input of layer l's cached keys, F32 [B,H,P,hd].
func PastKey(l int) string { return fmt.Sprintf("past_key.%d", l) }

// PastValue names the input of layer l's cached values, F32 [B,H,P,hd].
func PastValue(l int) string { return fmt.Sprintf("past_value.%d", l) }

// PresentKey names the output of layer l's keys over past and new tokens,
// F32 [B,H,P+T,hd].
func PresentKey(l int) string { return fmt.Sprintf("present_key.%d", l) }

// PresentValue names the output of layer l's values over past and new
// tokens, F32 [B,H,P+T,hd].
func PresentValue(l int) string { return fmt.Sprintf("present_value.%d", l) }

// Names of the decode graphs' extra inputs and outputs.
const (
	// RowsInput is I64 [B]: for each row of a standard decode step, the row
	// of the past cache it continues (ascending), so that rows whose
	// sequences ended leave the batch without a copy outside the graph.
	RowsInput = "rows"
	// LogSumExpOutput is F32 [B]: log Σ exp of each row's logits, so that a
	// token's log-probability is its logit minus it, with no pass over the
	// vocabulary in Go.
	LogSumExpOutput = "logsumexp"
	// ArgMaxOutput is I64 [B]: the first index of each row's largest logit,
	// the greedy choice.
	ArgMaxOutput = "argmax"
	// MaxLogitOutput is F32 [B]: each row's largest logit, so that greedy
	// decoding needs nothing of the logits but these three outputs.
	MaxLogitOutput = "max_logit"
)

// Names of the cached decode graph's extra inputs and outputs.
const (
	// SeqLensInput is I32 [B]: each row's length after the step, minus 1.
	SeqLensInput = "seqlens_k"
	// TotalLengthInput is I32 [1]: the longest row's length after the step.
	TotalLengthInput = "total_sequence_length"
)

// Dims64 is a shape as ONNX Runtime takes it.
func Dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, s := range shape {
		d[i] = int64(s)
	}
	return d
}

// Numel is the number of values a tensor of the shape holds.
func Numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}
