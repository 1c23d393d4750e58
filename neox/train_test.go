package neox

import "testing"

// The training graphs keep their node counts: small nodes (reshapes,
// flattens, the rotary's splits and concats) cost a kernel launch and a
// copy each, and once folded away should not creep back. The limits are the
// counts measured when the lean heads and the flat activations came in; the
// counts before, with LogSoftmax heads, (B,S,·) activations flattened again
// in the backward, the rotary split into halves and every output but the
// loss's reshaped, are in the comments.
func TestTrainGraphNodeCount(t *testing.T) {
	limits := map[string]map[LossKind]int{
		"parallel-partial-rotary":     {CrossEntropy: 304, LogProb: 328, PPO: 380}, // before: 427, 452, 511
		"sequential-tied-full-rotary": {CrossEntropy: 304, LogProb: 328, PPO: 380}, // before: 410, 435, 494
		"no-rotary":                   {CrossEntropy: 268, LogProb: 292, PPO: 344}, // before: 358, 383, 442
	}
	for _, tc := range trainCases {
		for loss, limit := range limits[tc.name] {
			tg, err := BuildTrain(tc.config(), TrainOptions{Loss: loss, UnfrozenLayers: -1})
			if err != nil {
				t.Fatal(err)
			}
			if n := tg.Graph.NumNodes(); n > limit {
				t.Errorf("%s/%s: %d nodes, want at most %d", tc.name, lossNames[loss], n, limit)
			}
		}
	}
}
