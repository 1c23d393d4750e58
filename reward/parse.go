package reward

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"irl/onnx"
	"irl/rows"
)

// DefaultNoise is the lexicon's noise amplitude in the paper (Algorithm 2).
const DefaultNoise = 0.2

// NoNoise, as Options.Noise, turns the lexicon's noise off (0 means
// DefaultNoise).
const NoNoise = -1.0

// Options carry what the command-line flags give to Parse. The zero value
// is the defaults.
type Options struct {
	// RewardModel is the frozen encoder of a head: reward; "" means the
	// model recorded in the head's feature metadata.
	RewardModel string
	// Label is the classifier label whose probability is the penalty;
	// "" means "toxic".
	Label string
	// Join goes between prompt and response in a classifier's input. It is
	// "" by default because the paper's official code glues the two.
	Join string
	// Relative, when set, names a field of each sample (Fields) holding an
	// original response: the reward becomes R(prompt + response) −
	// R(prompt + original). See Relative.
	Relative string
	// Transform is "none" (or "") or "official-rf2". See Transformed.
	Transform string
	// Noise is the lexicon's noise amplitude: 0 means DefaultNoise, a
	// negative value (NoNoise) none.
	Noise float64
	// Seed seeds the lexicon's noise.
	Seed uint64
	// Session configures ONNX Runtime for head: and classifier: sources;
	// onnx.Init must have been called.
	Session onnx.Options
	// BatchSize is the rows per forward pass (0: 32).
	BatchSize int
	// Tokenizer overrides the model's tokenizer.json (tokenizer.DefaultPath).
	Tokenizer string
	// IDsOnly says every sample will carry its token ids, so a classifier
	// needs no tokenizer. Otherwise a classifier whose tokenizer cannot be
	// loaded is refused when it is opened, with one error, rather than at
	// every text it is then given.
	IDsOnly bool
	// MaxLength is the longest input in tokens; 0 means the model's limit
	// (a head: the max_length its features were made with).
	MaxLength int
	// Truncate says which end of a longer text is cut, or "error". ""
	// means right for a classifier (Hugging Face's side) and left for a
	// head (irl features' side, which keeps the response being scored).
	Truncate rows.Truncation
	// Progress, if not nil, receives progress bars.
	Progress io.Writer
	// Timeout is the longest a cmd: child may take over one answer: 0
	// means DefaultTimeout, a negative value (NoTimeout) no limit.
	Timeout time.Duration
}

// DefaultTimeout is how long a cmd: child may take over one answer when
// Options.Timeout is 0: long enough for a child that loads a model before
// its first answer.
const DefaultTimeout = 60 * time.Second

// NoTimeout, as Options.Timeout, lets a cmd: child take as long as it
// likes over an answer.
const NoTimeout = time.Duration(-1)

// timeout is o.Timeout resolved: 0 for no limit.
func (o Options) timeout() time.Duration {
	switch {
	case o.Timeout == 0:
		return DefaultTimeout
	case o.Timeout < 0:
		return 0
	}
	return o.Timeout
}

// Parse opens the reward source a spec names:
//
//	lexicon:TOXIC.txt,NONTOXIC.txt   the paper's Algorithm 2 (Lexicon)
//	head:HEAD.json                   a reward head on its frozen encoder (HeadSource)
//	classifier:MODEL                 −P(label) of a sequence classifier (ClassifierSource)
//	cmd:PROGRAM ARGS…                a long-lived child process (CmdSource); the
//	                                 command is split on white space, with no quoting
//
// then wraps it in Relative when o.Relative is set and in Transformed when
// o.Transform is "official-rf2"; with both set, in RelativeRF2, the
// official rf2(R(gen)) − rf2(R(orig)), each side's batch transformed by
// itself. An unknown kind is an error listing the kinds.
func Parse(spec string, o Options) (Source, error) {
	kind, err := SpecKind(spec)
	if err != nil {
		return nil, err
	}
	_, rest, _ := splitSpec(spec)
	// Settings are checked before a model is opened or a child started.
	transform, err := checkTransform(o.Transform)
	if err != nil {
		return nil, err
	}
	switch o.Truncate {
	case "", rows.TruncateLeft, rows.TruncateRight, rows.TruncateError:
	default:
		return nil, fmt.Errorf("unknown truncation %q: want left, right or error", o.Truncate)
	}
	if o.MaxLength < 0 {
		return nil, fmt.Errorf("max length %d is negative", o.MaxLength)
	}
	var src Source
	switch kind {
	case "lexicon":
		src, err = openLexicon(spec, rest, o)
	case "head":
		src, err = OpenHead(rest, o)
	case "classifier":
		src, err = OpenClassifier(rest, o)
	case "cmd":
		argv := strings.Fields(rest)
		if len(argv) == 0 {
			return nil, fmt.Errorf("reward spec %q: no program after \"cmd:\"", spec)
		}
		src, err = StartCmd(argv, o)
	}
	if err != nil {
		return nil, err
	}
	if o.Relative != "" && transform == TransformOfficialRF2 {
		// The official IRL-RLHF reward: each side's batch transformed by
		// itself, then subtracted (RelativeRF2), not rf2 of the difference.
		return NewRelativeRF2(src, o.Relative, officialEOS(src)), nil
	}
	if o.Relative != "" {
		src = NewRelative(src, o.Relative)
	}
	if transform == TransformOfficialRF2 {
		src = &Transformed{inner: src, name: transform}
	}
	return src, nil
}

func openLexicon(spec, rest string, o Options) (*Lexicon, error) {
	lists := strings.Split(rest, ",")
	if len(lists) != 2 || lists[0] == "" || lists[1] == "" {
		return nil, fmt.Errorf("reward spec %q: want lexicon:TOXIC.txt,NONTOXIC.txt (two word lists)", spec)
	}
	noise := o.Noise
	switch {
	case math.IsNaN(noise) || math.IsInf(noise, 0):
		return nil, fmt.Errorf("lexicon noise %v: want a finite amplitude", noise)
	case noise == 0:
		noise = DefaultNoise
	case noise < 0:
		noise = 0
	}
	return LoadLexicon(lists[0], lists[1], noise, o.Seed)
}
