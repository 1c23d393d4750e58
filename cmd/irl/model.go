package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/safetensors"
	"irl/tokenizer"
	"irl/weights"
)

func modelCommand() *cli.Command {
	return &cli.Command{
		Name:  "model",
		Usage: "make, inspect and run GPT-NeoX (Pythia) models",
		Subcommands: []*cli.Command{
			modelInitCommand(),
			modelInfoCommand(),
			modelForwardCommand(),
			modelGradCommand(),
			modelExportCommand(),
		},
	}
}

func shapeNames() string {
	var names []string
	for n := range neox.Shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// modelInitHelp is the help text of modelInit.
const modelInitHelp = `Writes DIR/config.json and DIR/model.safetensors, initialised as transformers
does (normal weights with std initializer_range, zero biases, unit layer norms).
Start from a named shape and override any dimension for a custom one:

  irl model init --shape pythia-70m --seed 1 --out models/p70m
  irl model init --shape pythia-70m --layers 2 --hidden-size 64 --heads 4 --out tiny

Known shapes: `

func modelInitCommand() *cli.Command {
	return &cli.Command{
		Name:        "init",
		Usage:       "write a randomly initialised GPT-NeoX model as a Hugging Face folder",
		Description: modelInitHelp + shapeNames() + `.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shape", Value: "pythia-70m", Usage: "named shape to start from: " + shapeNames()},
			seedFlag("random seed; the same seed gives the same weights"),
			&cli.StringFlag{Name: "out", Required: true, Usage: "output folder"},
			&cli.IntFlag{Name: "vocab-size", Usage: "override the vocabulary size", DefaultText: "the shape's"},
			&cli.IntFlag{Name: "hidden-size", Usage: "override the model width", DefaultText: "the shape's"},
			&cli.IntFlag{Name: "layers", Usage: "override the number of layers", DefaultText: "the shape's"},
			&cli.IntFlag{Name: "heads", Usage: "override the number of attention heads", DefaultText: "the shape's"},
			&cli.IntFlag{Name: "intermediate-size", Usage: "override the MLP width", DefaultText: "the shape's, or 4 × --hidden-size when that is given"},
			&cli.IntFlag{Name: "max-positions", Usage: "override max_position_embeddings", DefaultText: "the shape's"},
			&cli.Float64Flag{Name: "rotary-pct", Usage: "override the fraction of each head's dimensions that is rotated", DefaultText: "the shape's"},
			&cli.Float64Flag{Name: "rotary-base", Usage: "override the rotary base (theta)", DefaultText: "the shape's"},
			&cli.Float64Flag{Name: "layer-norm-eps", Usage: "override the layer-norm epsilon", DefaultText: "the shape's"},
			&cli.BoolFlag{Name: "sequential", Usage: "use a sequential residual (attention, then MLP) instead of Pythia's parallel one"},
			&cli.BoolFlag{Name: "tie-embeddings", Usage: "share the input embedding with the output head"},
			&cli.StringFlag{Name: "tokenizer", Usage: "a tokenizer.json to copy into the folder; its EOS token becomes the model's"},
			&cli.IntFlag{Name: "eos-token-id", Usage: "the EOS token id", DefaultText: "the tokenizer's EOS, else the shape's (0)"},
			overwriteFlag,
		},
		Action: runModelInit,
	}
}

// modelShape is --shape with the flags' overrides.
func modelShape(c *cli.Context) (neox.Config, error) {
	cfg, ok := neox.Shapes[c.String("shape")]
	if !ok {
		return cfg, fmt.Errorf("unknown --shape %q: want one of %s", c.String("shape"), shapeNames())
	}
	if v := c.Int("vocab-size"); v != 0 {
		cfg.VocabSize = v
	}
	if v := c.Int("hidden-size"); v != 0 {
		cfg.HiddenSize = v
		cfg.IntermediateSize = 4 * v
	}
	if v := c.Int("layers"); v != 0 {
		cfg.NumLayers = v
	}
	if v := c.Int("heads"); v != 0 {
		cfg.NumHeads = v
	}
	if v := c.Int("intermediate-size"); v != 0 {
		cfg.IntermediateSize = v
	}
	if v := c.Int("max-positions"); v != 0 {
		cfg.MaxPositions = v
	}
	if c.IsSet("rotary-pct") {
		cfg.RotaryPct = c.Float64("rotary-pct")
	}
	if v := c.Float64("rotary-base"); v != 0 {
		cfg.RotaryBase = v
	}
	if v := c.Float64("layer-norm-eps"); v != 0 {
		cfg.LayerNormEps = v
	}
	if c.Bool("sequential") {
		cfg.ParallelResidual = false
	}
	cfg.TieEmbeddings = c.Bool("tie-embeddings")
	return cfg, nil
}

func runModelInit(c *cli.Context) error {
	cfg, err := modelShape(c)
	if err != nil {
		return err
	}
	out := c.String("out")
	if err := atomicfile.CheckDir(out, c.Bool("overwrite")); err != nil {
		return err
	}
	tokPath := c.String("tokenizer")
	if tokPath != "" {
		tok, err := tokenizer.Load(tokPath)
		if err != nil {
			return err
		}
		if tok.VocabSize() > cfg.VocabSize {
			return fmt.Errorf("%s has %d tokens, more than the model's vocabulary of %d (--vocab-size)", tokPath, tok.VocabSize(), cfg.VocabSize)
		}
		// Pythia's EOS id 0 is "!" in GPT-2's vocabulary: the
		// tokenizer knows its own EOS.
		if eos, ok := tok.EOS(); ok {
			cfg.EOSTokenID, cfg.BOSTokenID = eos, eos
		}
	}
	if c.IsSet("eos-token-id") {
		cfg.EOSTokenID = c.Int("eos-token-id")
	}
	if cfg.EOSTokenID < 0 || cfg.EOSTokenID >= cfg.VocabSize {
		return fmt.Errorf("EOS token id %d is outside the vocabulary [0,%d)", cfg.EOSTokenID, cfg.VocabSize)
	}
	m, err := neox.Init(cfg, c.Uint64("seed"))
	if err != nil {
		return fmt.Errorf("model init: %w", err)
	}
	// The folder is written whole and renamed: with --overwrite an
	// old model's optimizer and trainer files do not survive beside
	// the new weights.
	err = atomicfile.WriteDir(out, func(tmp string) error {
		if err := m.Save(tmp); err != nil {
			return err
		}
		if tokPath != "" {
			return atomicfile.Copy(tokPath, filepath.Join(tmp, "tokenizer.json"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d layers, width %d, %.1fM parameters\n", out, cfg.NumLayers, cfg.HiddenSize, float64(cfg.NumParams())/1e6)
	return nil
}

func modelInfoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "print a model folder's configuration and parameter count as JSON",
		Flags: []cli.Flag{&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder"}},
		Action: func(c *cli.Context) error {
			m, err := neox.Load(c.String("model"))
			if err != nil {
				return err
			}
			cfg := m.Config
			_, tokErr := os.Stat(filepath.Join(c.String("model"), "tokenizer.json"))
			info := map[string]any{
				"model":             c.String("model"),
				"parameters":        cfg.NumParams(),
				"vocab_size":        cfg.VocabSize,
				"hidden_size":       cfg.HiddenSize,
				"layers":            cfg.NumLayers,
				"heads":             cfg.NumHeads,
				"intermediate_size": cfg.IntermediateSize,
				"max_positions":     cfg.MaxPositions,
				"rotary_dims":       cfg.RotaryDims(),
				"rotary_base":       cfg.RotaryBase,
				"parallel_residual": cfg.ParallelResidual,
				"layer_norm_eps":    cfg.LayerNormEps,
				"tie_embeddings":    cfg.TieEmbeddings,
				"eos_token_id":      cfg.EOSTokenID,
				"hidden_states":     cfg.NumLayers + 1,
				"tokenizer":         tokErr == nil,
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		},
	}
}

func modelForwardCommand() *cli.Command {
	return &cli.Command{
		Name:  "forward",
		Usage: "run a forward pass over token ids and write logits and every hidden state",
		Description: `Reads input_ids (I64 [B,S]) and, when present, attention_mask and position_ids
from IN.safetensors; other tensors are ignored. Without position_ids, positions
count only unmasked tokens (max(cumsum(mask) - 1, 0)), as transformers does for
left padding. Writes logits (F32 [B,S,V]) and hidden_states.0 … hidden_states.L
(F32 [B,S,D]) in Hugging Face's convention: 0 is the embeddings, L is after the
final layer norm. Values at padded positions carry no meaning.`,
		Flags: batchFlags(),
		Action: func(c *cli.Context) error {
			so, m, bt, err := modelAndBatch(c)
			if err != nil {
				return err
			}
			hidden := make([]int, m.Config.NumLayers+1)
			for i := range hidden {
				hidden[i] = i
			}
			r, err := policy.NewRunner(m, neox.ForwardOptions{Hidden: hidden, Logits: true}, so, nil)
			if err != nil {
				return err
			}
			defer r.Destroy()
			out, err := r.Forward(bt)
			if err != nil {
				return err
			}
			var ts []safetensors.Tensor
			for _, name := range r.Outputs() {
				o := out[name]
				if err := weights.CheckOutput(name, o.Shape, o.Data); err != nil {
					return fmt.Errorf("%s: %w", c.String("model"), err)
				}
				ts = append(ts, safetensors.FromFloat32(name, o.Shape, o.Data))
			}
			return safetensors.WriteFile(c.String("out"), ts, map[string]string{"model": c.String("model")})
		},
	}
}

// batchFlags are the flags of the commands that run a model over a tensor
// file of token ids.
func batchFlags(extra ...cli.Flag) []cli.Flag {
	return append(append([]cli.Flag{
		&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder"},
		&cli.StringFlag{Name: "input", Aliases: []string{"inputs"}, Required: true, Usage: "safetensors file with input_ids [, attention_mask, position_ids]"},
		&cli.StringFlag{Name: "out", Required: true, Usage: "output safetensors file"},
	}, extra...), runtimeFlags()...)
}

// modelAndBatch checks --out, then loads ONNX Runtime, --model and the
// checked batch of --input.
func modelAndBatch(c *cli.Context) (onnx.Options, *neox.Model, *neox.Batch, error) {
	if err := atomicfile.CheckFile(c.String("out")); err != nil {
		return onnx.Options{}, nil, nil, err
	}
	so, err := sessionOptions(c)
	if err != nil {
		return so, nil, nil, err
	}
	m, err := neox.Load(c.String("model"))
	if err != nil {
		return so, nil, nil, err
	}
	bt, err := neox.ReadBatch(c.String("input"))
	if err != nil {
		return so, nil, nil, err
	}
	return so, m, bt, bt.Validate(m.Config, c.String("input"))
}
