package neox

import "fmt"

// Batch is a padded batch of token ids, I64 [B,S] each, row-major.
type Batch struct {
	B, S          int
	InputIDs      []int64
	AttentionMask []int64
	// PositionIDs may be nil: then positions count only unmasked tokens, as
	// transformers does for left padding (max(cumsum(mask) - 1, 0)).
	PositionIDs []int64
}

// Validate checks sizes and token ids against the configuration; name is
// used in errors (a file, say).
func (bt *Batch) Validate(c Config, name string) error {
	n := bt.B * bt.S
	if bt.B <= 0 || bt.S <= 0 {
		return fmt.Errorf("%s: empty batch [%d,%d]", name, bt.B, bt.S)
	}
	if len(bt.InputIDs) != n {
		return fmt.Errorf("%s: input_ids has %d values, want %d×%d", name, len(bt.InputIDs), bt.B, bt.S)
	}
	if bt.AttentionMask != nil && len(bt.AttentionMask) != n {
		return fmt.Errorf("%s: attention_mask has %d values, want %d×%d like input_ids", name, len(bt.AttentionMask), bt.B, bt.S)
	}
	if bt.PositionIDs != nil && len(bt.PositionIDs) != n {
		return fmt.Errorf("%s: position_ids has %d values, want %d×%d like input_ids", name, len(bt.PositionIDs), bt.B, bt.S)
	}
	for i, id := range bt.InputIDs {
		if id < 0 || id >= int64(c.VocabSize) {
			return fmt.Errorf("%s: input_ids[%d,%d] = %d is outside the vocabulary [0,%d)", name, i/bt.S, i%bt.S, id, c.VocabSize)
		}
	}
	for i, p := range bt.PositionIDs {
		if p < 0 || p >= int64(c.MaxPositions) {
			return fmt.Errorf("%s: position_ids[%d,%d] = %d is outside [0,%d) (max_position_embeddings)", name, i/bt.S, i%bt.S, p, c.MaxPositions)
		}
	}
	if bt.PositionIDs == nil {
		for r := 0; r < bt.B; r++ {
			var real int64
			for s := 0; s < bt.S; s++ {
				if bt.AttentionMask == nil || bt.AttentionMask[r*bt.S+s] != 0 {
					real++
				}
			}
			if real > int64(c.MaxPositions) {
				return fmt.Errorf("%s: row %d has %d tokens, more than max_position_embeddings %d", name, r, real, c.MaxPositions)
			}
		}
	}
	return nil
}

// Complete fills a missing attention mask with ones and missing position ids
// from the mask.
func (bt *Batch) Complete() {
	if bt.AttentionMask == nil {
		bt.AttentionMask = make([]int64, bt.B*bt.S)
		for i := range bt.AttentionMask {
			bt.AttentionMask[i] = 1
		}
	}
	if bt.PositionIDs == nil {
		bt.PositionIDs = PositionsFromMask(bt.AttentionMask, bt.B, bt.S)
	}
}

// PositionsFromMask is max(cumsum(mask) - 1, 0) along each row.
func PositionsFromMask(mask []int64, b, s int) []int64 {
	pos := make([]int64, b*s)
	for r := 0; r < b; r++ {
		var c int64
		for j := 0; j < s; j++ {
			c += mask[r*s+j]
			pos[r*s+j] = max(c-1, 0)
		}
	}
	return pos
}
