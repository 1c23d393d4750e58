package neox

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// TrainEmbeddings with frozen layers: the gradient of embed_in does not
// depend on which layers train, so it must be the all-layers graph's (as
// must the unfrozen layers' and the heads'); the frozen layers' gradients
// are no outputs, and no node is left computing them (onnx.Graph prunes
// nothing, so a dead node would run at every step).
func TestTrainEmbeddingsGradient(t *testing.T) {
	const emb = "gpt_neox.embed_in.weight"
	for _, tc := range trainCases {
		c := tc.config()
		for _, loss := range []LossKind{CrossEntropy, LogProb, PPO} {
			t.Run(tc.name+"/"+lossNames[loss], func(t *testing.T) {
				feeds := trainFeeds(c, loss, 3)
				all, err := BuildTrain(c, TrainOptions{Loss: loss, UnfrozenLayers: -1})
				if err != nil {
					t.Fatal(err)
				}
				want := runTrain(t, all, feeds)
				for k := 0; k < c.NumLayers; k++ {
					tg, err := BuildTrain(c, TrainOptions{Loss: loss, UnfrozenLayers: k, TrainEmbeddings: true})
					if err != nil {
						t.Fatal(err)
					}
					plain, err := BuildTrain(c, TrainOptions{Loss: loss, UnfrozenLayers: k})
					if err != nil {
						t.Fatal(err)
					}
					// Trainable: embed_in, then what the graph without
					// the embeddings trains, in parameter order.
					wantTrainable := append([]string{emb}, slices.DeleteFunc(slices.Clone(plain.Trainable), func(n string) bool { return n == emb })...)
					if !slices.Equal(tg.Trainable, wantTrainable) {
						t.Errorf("unfrozen %d: trainable %v, want %v", k, tg.Trainable, wantTrainable)
					}
					for l := 0; l < c.NumLayers-k; l++ {
						p := layerPrefix(l)
						for _, n := range tg.Outputs {
							if strings.HasPrefix(n, GradName(p)) {
								t.Errorf("unfrozen %d: frozen layer %d's gradient %s is an output", k, l, n)
							}
						}
					}
					if err := deadNodes(tg); err != nil {
						t.Errorf("unfrozen %d: %v", k, err)
					}
					got := runTrain(t, tg, feeds)
					for _, name := range tg.Outputs {
						d, scale := maxDiff(got[name], want[name])
						if d > 1e-6*math.Max(scale, 1) {
							t.Errorf("unfrozen %d: %s differs from the all-layers graph's by %g (scale %g)", k, name, d, scale)
						}
					}
					if k == 1 && tc.name == "parallel-partial-rotary" && loss == PPO {
						t.Logf("nodes: unfrozen %d %d, with the embeddings %d, all layers %d", k, plain.Graph.NumNodes(), tg.Graph.NumNodes(), all.Graph.NumNodes())
					}
				}
			})
		}
	}
}

// deadNodes reports a node none of whose outputs a node or the graph's
// outputs read.
func deadNodes(tg *TrainGraph) error {
	gp := tg.Graph.Model().Graph
	read := map[string]bool{}
	for _, o := range gp.Output {
		read[o.Name] = true
	}
	for _, n := range gp.Node {
		for _, in := range n.Input {
			read[in] = true
		}
	}
	var dead []string
	for _, n := range gp.Node {
		if !slices.ContainsFunc(n.Output, func(o string) bool { return read[o] }) {
			dead = append(dead, fmt.Sprintf("%s %s", n.OpType, n.Name))
		}
	}
	if len(dead) > 0 {
		return fmt.Errorf("%d nodes whose outputs nothing reads: %v", len(dead), dead)
	}
	return nil
}
