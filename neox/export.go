package neox

// Export writes m as a standalone .onnx inference graph: weights as
// initializers, inputs input_ids, attention_mask and position_ids (I64 [B,S]),
// outputs logits and hidden_states.0 … hidden_states.L. Weights past
// externalAbove bytes (≤ 0: only past protobuf's 2 GiB limit) go to
// PATH.data beside it. The graph is built from standard operators only, so
// that any ONNX runtime runs it, whatever the padding of its batches.
func Export(m *Model, path string, externalAbove int64) error {
	hidden := make([]int, m.Config.NumLayers+1)
	for i := range hidden {
		hidden[i] = i
	}
	fg, err := BuildForward(m, ForwardOptions{Hidden: hidden, Logits: true, Standard: true})
	if err != nil {
		return err
	}
	return fg.Graph.WriteFile(path, externalAbove)
}
