package audit

import (
	"fmt"
	"strings"

	"irl/neox"
	"irl/onnx"
	"irl/policy"
	"irl/rewardhead"
	"irl/rows"
	"irl/tokenizer"
)

// Token is one position of a text: its token and the head's reading there.
type Token struct {
	Token string  `json:"token"`
	Value float64 `json:"value"`
}

// Attribution is a text read token by token. With mean pooling, Value is
// each token's share of the score, (wᵀh_t + b)/T, and the values sum to
// the score (Sums); with last or last:K pooling, Value is the head applied
// to each position's hidden state, wᵀh_t + b: what the reward would be if
// the text ended there, the pooled position's value being the score.
type Attribution struct {
	Source string  `json:"source"`
	Prompt string  `json:"prompt"`
	Text   string  `json:"text"`
	Score  float64 `json:"score"`
	Sums   bool    `json:"sums"`
	// Pooled is the position whose hidden state the head reads (-1 for
	// mean pooling).
	Pooled int     `json:"pooled"`
	Tokens []Token `json:"tokens"`
}

// Attribute reads texts (prompt + text, joined as every command joins
// them) token by token with head h over hidden state layer of model, the
// features pooled by pool.
func Attribute(model *neox.Source, tok *tokenizer.Tokenizer, so onnx.Options, layer int, pool neox.Pooling, h *rewardhead.Head, rs []rows.Row) ([]Attribution, error) {
	if model.IsONNX() {
		return nil, fmt.Errorf("%s: token attributions need a model folder, not an .onnx file", model.Path)
	}
	m, err := model.Load()
	if err != nil {
		return nil, err
	}
	l := layer
	if l < 0 {
		l += m.Config.NumLayers + 1
	}
	if l < 0 || l > m.Config.NumLayers {
		return nil, fmt.Errorf("layer %d is out of range for %s", layer, model.Path)
	}
	if len(h.W) != m.Config.HiddenSize {
		return nil, fmt.Errorf("the head has %d weights, the model's hidden states %d", len(h.W), m.Config.HiddenSize)
	}
	k := 0
	switch {
	case pool == neox.PoolMean:
	case pool == neox.PoolLast || pool == neox.NoPool:
		k = 1
	default:
		var ok bool
		if k, ok = pool.FromEnd(); !ok {
			return nil, fmt.Errorf("pooling %q has no token reading", pool)
		}
	}
	r, err := policy.NewRunner(m, neox.ForwardOptions{Hidden: []int{l}}, so, nil)
	if err != nil {
		return nil, err
	}
	defer r.Destroy()
	enc, bad := rows.Encode("texts", rs, rows.EncodeOptions{Tokenizer: tok, MaxLength: m.Config.MaxPositions, Truncate: rows.TruncateLeft, VocabSize: m.Config.VocabSize})
	if len(bad) > 0 {
		return nil, bad[0]
	}
	var out []Attribution
	for i, e := range enc {
		s := len(e.IDs)
		mask := make([]int64, s)
		for j := range mask {
			mask[j] = 1
		}
		res, err := r.Forward(&neox.Batch{B: 1, S: s, InputIDs: e.IDs, AttentionMask: mask})
		if err != nil {
			return nil, err
		}
		hs := res[neox.HiddenOutput(l)].Data
		d := m.Config.HiddenSize
		a := Attribution{Prompt: rs[i].Prompt, Text: rs[i].Text, Sums: k == 0, Pooled: -1}
		if k > 0 {
			a.Pooled = max(0, s-k)
		}
		for t := 0; t < s; t++ {
			v := h.B
			for j, w := range h.W {
				v += w * float64(hs[t*d+j])
			}
			if k == 0 {
				v /= float64(s)
				a.Score += v
			} else if t == a.Pooled {
				a.Score = v
			}
			a.Tokens = append(a.Tokens, Token{Token: strings.ToValidUTF8(tok.Decode(e.IDs[t:t+1]), "\uFFFD"), Value: v})
		}
		out = append(out, a)
	}
	return out, nil
}
