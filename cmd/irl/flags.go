package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"

	"irl/onnx"
)

// Flags shared by every command that runs ONNX Runtime.
var (
	ortLibFlag  = &cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, then .cache/ort, then system folders)", EnvVars: nil}
	deviceFlag  = &cli.StringFlag{Name: "device", Value: "cpu", Usage: "where to run: cpu or cuda (needs an ONNX Runtime built with the CUDA provider)"}
	threadsFlag = &cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads", DefaultText: "0, one per core"}
	tf32Flag    = &cli.BoolFlag{Name: "tf32", Usage: "with --device cuda, let MatMuls round their inputs to TensorFloat-32: faster on recent GPUs (2.1× for features on an H200), 10-bit mantissas", DefaultText: "off: float32, as in PyTorch"}
)

func runtimeFlags() []cli.Flag { return []cli.Flag{deviceFlag, threadsFlag, tf32Flag, ortLibFlag} }

// sessionOptions loads ONNX Runtime and reads --device, --threads and --tf32.
func sessionOptions(c *cli.Context) (onnx.Options, error) {
	dev, err := onnx.ParseDevice(c.String("device"))
	if err != nil {
		return onnx.Options{}, err
	}
	if c.Bool("tf32") && dev != onnx.CUDA {
		return onnx.Options{}, fmt.Errorf("--tf32 applies to CUDA MatMuls: give it with --device cuda")
	}
	threads := c.Int("threads")
	if threads < 0 {
		return onnx.Options{}, fmt.Errorf("--threads %d: want a positive count, or 0 for one per core", threads)
	}
	// Far more threads than cores only thrash (100000 stalled for minutes).
	if limit := 4 * runtime.NumCPU(); threads > limit {
		fmt.Fprintf(os.Stderr, "warning: --threads %d capped at %d (4 per core on this machine)\n", threads, limit)
		threads = limit
	}
	if err := onnx.Init(c.String("ort-lib")); err != nil {
		return onnx.Options{}, err
	}
	return onnx.Options{Device: dev, Threads: threads, TF32: c.Bool("tf32")}, nil
}

// overwriteFlag is the one flag that lets a command replace a non-empty
// output folder.
var overwriteFlag = &cli.BoolFlag{Name: "overwrite", Usage: "replace what an earlier run left in the output folder (a non-empty folder is refused otherwise)"}

// The vocabulary of flags: one name for each thing across commands (README's
// table of flags lists them). Each command takes what it needs.

// inputFlag is the row file every command that reads rows takes: JSON lines,
// CSV or Parquet ("-": JSON lines on stdin). aliases keep names that earlier
// versions or an issue fixed (--data, --prompts).
func inputFlag(usage string, required bool, aliases ...string) *cli.StringFlag {
	return &cli.StringFlag{Name: "input", Aliases: aliases, Required: required, Usage: usage}
}

// textFieldFlag names the text column.
func textFieldFlag(def, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "text-field", Value: def, Usage: usage}
}

// promptFieldFlag names the prompt column (--prefix-field in earlier versions
// of irl features).
func promptFieldFlag(def, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "prompt-field", Aliases: []string{"prefix-field"}, Value: def, Usage: usage}
}

// tokenizerFlag is a tokenizer.json; every command defaults to the one in
// the model folder (or beside an .onnx file), through tokenizer.DefaultPath.
var tokenizerFlag = &cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json", DefaultText: "tokenizer.json in the model folder, or beside an .onnx file"}

// maxLengthFlag and truncateFlag: the longest row in tokens, and which end
// of a longer row is cut (left keeps the last tokens, right the first, error
// makes it a bad row). Commands differ only in the default side.
func maxLengthFlag() *cli.IntFlag {
	return &cli.IntFlag{Name: "max-length", Usage: "longest row in tokens", DefaultText: "the model's limit"}
}

func truncateFlag(def string) *cli.StringFlag {
	return &cli.StringFlag{Name: "truncate", Value: def, Usage: "for rows over --max-length: left (keep the last tokens), right (keep the first), or error (a bad row)"}
}

// seedFlag: every random draw of a command comes from --seed, default 1.
func seedFlag(usage string) *cli.Uint64Flag {
	return &cli.Uint64Flag{Name: "seed", Value: 1, Usage: usage}
}

// inputFormatFlag overrides the row file's format, which is otherwise told
// by its extension.
var inputFormatFlag = &cli.StringFlag{Name: "input-format", Usage: "jsonl, csv or parquet", DefaultText: "from the file's extension"}

var (
	quietFlag   = &cli.BoolFlag{Name: "quiet", Usage: "no progress bar"}
	skipBadFlag = &cli.BoolFlag{Name: "skip-bad", Usage: "skip and report bad rows instead of stopping at the first"}
)
