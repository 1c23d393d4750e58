package main

import (
	"github.com/urfave/cli/v2"

	"irl/onnx"
)

// Flags shared by every command that runs ONNX Runtime.
var (
	ortLibFlag  = &cli.StringFlag{Name: "ort-lib", Usage: "path of libonnxruntime.so (default: $ONNXRUNTIME_LIB, then .cache/ort, then system folders)", EnvVars: nil}
	deviceFlag  = &cli.StringFlag{Name: "device", Value: "cpu", Usage: "where to run: cpu or cuda (needs an ONNX Runtime built with the CUDA provider)"}
	threadsFlag = &cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads (0: one per core)"}
)

func runtimeFlags() []cli.Flag { return []cli.Flag{deviceFlag, threadsFlag, ortLibFlag} }

// sessionOptions loads ONNX Runtime and reads --device and --threads.
func sessionOptions(c *cli.Context) (onnx.Options, error) {
	dev, err := onnx.ParseDevice(c.String("device"))
	if err != nil {
		return onnx.Options{}, err
	}
	if err := onnx.Init(c.String("ort-lib")); err != nil {
		return onnx.Options{}, err
	}
	return onnx.Options{Device: dev, Threads: c.Int("threads")}, nil
}

// overwriteFlag is the one flag that lets a command replace a non-empty
// output folder.
var overwriteFlag = &cli.BoolFlag{Name: "overwrite", Usage: "replace what an earlier run left in the output folder (a non-empty folder is refused otherwise)"}
