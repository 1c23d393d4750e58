package neox

import (
	"fmt"

	"irl/safetensors"
)

// ReadBatch reads a batch of token ids from a safetensors file: input_ids
// (I64 [B,S]) and, when present, attention_mask and position_ids of the
// same shape. Other tensors are ignored. The batch is not checked against a
// model: see Batch.Validate.
func ReadBatch(path string) (*Batch, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ids, err := f.Get("input_ids")
	if err != nil {
		return nil, err
	}
	if len(ids.Shape) != 2 {
		return nil, fmt.Errorf("%s: tensor \"input_ids\" has shape %v, want [batch, seq]", path, ids.Shape)
	}
	bt := &Batch{B: ids.Shape[0], S: ids.Shape[1]}
	if bt.InputIDs, err = ids.Int64s(); err != nil {
		return nil, err
	}
	for _, opt := range []struct {
		name string
		dst  *[]int64
	}{{"attention_mask", &bt.AttentionMask}, {"position_ids", &bt.PositionIDs}} {
		if !f.Has(opt.name) {
			continue
		}
		t, _ := f.Get(opt.name)
		if err := t.CheckShape(bt.B, bt.S); err != nil {
			return nil, err
		}
		if *opt.dst, err = t.Int64s(); err != nil {
			return nil, err
		}
	}
	return bt, nil
}
