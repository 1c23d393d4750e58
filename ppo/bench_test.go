package ppo

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"irl/neox"
	"irl/onnx"
	"irl/onnx/onnxbench"
	"irl/reward"
	"irl/tokenizer"
)

// constant scores every sample alike: the benchmark times PPO, not a
// reward model.
type constant struct{}

func (constant) Score(s []reward.Sample) ([]float64, error) {
	out := make([]float64, len(s))
	for i := range out {
		out[i] = float64(i%3) - 1
	}
	return out, nil
}
func (constant) Close() error { return nil }

// BenchmarkPPOPhase70m times one PPO phase of a pythia-70m-shaped model:
// 16 prompts of 64 tokens, 32 new tokens, batch 16, 4 passes, and splits it
// into sampling, scoring, the policy's and the reference's log-probs, and
// the training steps (forward + backward + AdamW), reporting each one's
// tokens/s and the training's fraction of ORT's MatMul peak in the same run.
// Unfrozen layers: 4 (the preset) and all. The run has two phases and the
// second is timed: a process's first runs grow ONNX Runtime's shared arena
// (the first two forwards of a session took 3 s and 2 s where later ones
// take 0.6 s), which a long run pays once.
//
//	go test -run '^$' -bench PPOPhase70m -benchtime 1x ./ppo/
func BenchmarkPPOPhase70m(b *testing.B) {
	peak, err := onnxbench.MatMulBestPeak(onnx.Options{}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join("..", "testdata", "gpt2-bpe", "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, unfrozen := range []int{4, -1} {
		b.Run(fmt.Sprintf("unfrozen=%d", unfrozen), func(b *testing.B) {
			c := Defaults()
			c.NumRollouts, c.ChunkSize, c.BatchSize, c.PPOEpochs = 16, 16, 16, 4
			c.MaxNewTokens, c.SeqLength, c.TopK = 32, 96, 30
			c.TotalSteps, c.EvalInterval, c.CheckpointInterval, c.UnfrozenLayers = 8, 0, 0, unfrozen
			rng := rand.New(rand.NewPCG(1, 2))
			var ps []Prompt
			for i := 0; i < 20; i++ {
				ids := make([]int64, 64)
				for j := range ids {
					ids[j] = rng.Int64N(50000)
				}
				ps = append(ps, Prompt{IDs: ids, Row: i})
			}
			for i := 0; i < b.N; i++ {
				m, err := neox.Init(neox.Shapes["pythia-70m"], 1)
				if err != nil {
					b.Fatal(err)
				}
				out := filepath.Join(b.TempDir(), "run")
				if _, err := Run(m, tok, ps[:16], ps[16:], constant{}, c, Options{Out: out}); err != nil {
					b.Fatal(err)
				}
				lines := readLines(b, filepath.Join(out, "metrics.jsonl"))
				// Line 0 is the step-0 evaluation, lines 1–4 the first phase's
				// steps, 5–8 the second's.
				if len(lines) != 9 {
					b.Fatalf("%d metric lines, want 9", len(lines))
				}
				var train float64
				for _, l := range lines[5:] {
					train += l["time/backward"].(float64)
				}
				ph := lines[5]
				gen, score := ph["time/rollout_generate"].(float64), ph["time/rollout_score"].(float64)
				fwd, ref := ph["time/forward"].(float64), ph["time/reference"].(float64)
				tokens := 16 * 96
				cfg := m.Config
				// MatMul FLOPs of a training step: the forward over every layer and
				// the output head, and the backward (twice the forward's) over the
				// trained layers and the head.
				d, f := float64(cfg.HiddenSize), float64(cfg.IntermediateSize)
				layer := 2*d*3*d + 2*d*d + 2*2*d*f + 2*2*96*d
				head := 2 * d * float64(cfg.VocabSize)
				trained := cfg.NumLayers
				if unfrozen >= 0 {
					trained = unfrozen
				}
				flops := float64(tokens) * (float64(cfg.NumLayers)*layer + head + 2*(float64(trained)*layer+head)) * 4
				b.ReportMetric(16*32/gen, "gen-new-tokens/s")
				b.ReportMetric(16/score, "score-samples/s")
				b.ReportMetric(float64(tokens)/fwd, "policy-fwd-tokens/s")
				b.ReportMetric(float64(tokens)/ref, "ref-fwd-tokens/s")
				b.ReportMetric(float64(4*tokens)/train, "train-tokens/s")
				b.ReportMetric(flops/train/1e9, "train-GFLOP/s")
				b.ReportMetric(flops/train/peak, "train-of-peak")
				b.ReportMetric(peak/1e9, "peak-GFLOP/s")
				b.Logf("phase: generate %.2fs, score %.3fs, policy forward %.2fs, reference forward %.2fs, 4 training steps %.2fs",
					gen, score, fwd, ref, train)
			}
		})
	}
}
