package main

import (
	"fmt"
	"math"
	"os"

	"github.com/urfave/cli/v2"

	"irl/atomicfile"
	"irl/neox"
	"irl/policy"
	"irl/safetensors"
	"irl/weights"
)

func modelGradCommand() *cli.Command {
	return &cli.Command{
		Name:  "grad",
		Usage: "compute the next-token cross-entropy of input_ids and the gradient of every parameter",
		Description: `Reads input_ids (I64 [B,S]) and, when present, attention_mask and position_ids
from IN.safetensors. The loss is the mean next-token cross-entropy with labels =
input_ids shifted by one, as transformers computes it; positions whose token or
next token is masked are left out. Writes loss (F32 [1]) and grad.<name> for
every parameter, named as in the checkpoint (e.g. grad.embed_out.weight).`,
		Flags: batchFlags(&cli.IntFlag{Name: "unfrozen-layers", Value: -1, Usage: "only the top N layers and the head get gradients (-1: all, embeddings included)"}),
		Action: func(c *cli.Context) error {
			so, m, bt, err := modelAndBatch(c)
			if err != nil {
				return err
			}
			tr, err := policy.NewTrainer(m, neox.TrainOptions{Loss: neox.CrossEntropy, UnfrozenLayers: c.Int("unfrozen-layers")}, so, nil)
			if err != nil {
				return err
			}
			defer tr.Destroy()
			tb := &policy.TrainBatch{Batch: *bt}
			tb.NextTokenTargets()
			res, err := tr.Step(tb)
			if err != nil {
				return err
			}
			if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
				return fmt.Errorf("%s: the loss is %v; the model's outputs are not finite (check its weights and config)", c.String("model"), res.Loss)
			}
			ts := []safetensors.Tensor{safetensors.FromFloat32("loss", []int{1}, []float32{float32(res.Loss)})}
			for _, name := range tr.Graph.Trainable {
				g, err := tr.HostGrad(name) // a copy from the device on CUDA
				if err != nil {
					return err
				}
				if err := weights.CheckOutput(neox.GradName(name), m.Params[name].Shape, g); err != nil {
					return fmt.Errorf("%s: %w", c.String("model"), err)
				}
				ts = append(ts, safetensors.FromFloat32(neox.GradName(name), m.Params[name].Shape, g))
			}
			if err := safetensors.WriteFile(c.String("out"), ts, map[string]string{"model": c.String("model")}); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "loss %.6f, %d gradients written to %s\n", res.Loss, len(tr.Graph.Trainable), c.String("out"))
			return nil
		},
	}
}

func modelExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export-onnx",
		Usage: "write a model as a standalone ONNX inference graph (a snapshot for ONNX Runtime users)",
		Description: `The graph has the weights as initializers, inputs input_ids, attention_mask and
position_ids (I64 [batch, seq]), and outputs logits (F32 [B,S,V]) and
hidden_states.0 … hidden_states.L (F32 [B,S,D]). Models over 2 GB keep their
weights in OUT.data beside OUT, as ONNX's external-data convention describes.
"irl features --model OUT" reads it.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model folder"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output .onnx file"},
			&cli.Int64Flag{Name: "external-above", Usage: "bytes of weights past which they go to OUT.data (0: only past protobuf's 2 GB limit)"},
		},
		Action: func(c *cli.Context) error {
			if err := atomicfile.CheckFile(c.String("out")); err != nil {
				return err
			}
			m, err := neox.Load(c.String("model"))
			if err != nil {
				return err
			}
			if err := neox.Export(m, c.String("out"), c.Int64("external-above")); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s\n", c.String("out"))
			return nil
		},
	}
}
