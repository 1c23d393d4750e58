package ppo

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The tests here compare this package's arithmetic with TRLx's own, run on
// fixed inputs by tools/trlx-reference.py: testdata/trlx holds what both
// versions (EleutherAI/trlx 126c8f0, the paper's fork, and CarperAI/trlx
// main) computed. See testdata/trlx/README.md.

const trlxTol = 1e-6

var trlxVersions = []string{"fork", "main"}

func trlxFixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "trlx", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// jf reads a number, or the strings "nan", "inf" and "-inf".
func jf(x any) float64 {
	switch v := x.(type) {
	case float64:
		return v
	case string:
		switch v {
		case "nan":
			return math.NaN()
		case "inf":
			return math.Inf(1)
		case "-inf":
			return math.Inf(-1)
		}
	case nil:
		return math.NaN()
	}
	panic("not a number")
}

func jfs(x any) []float64 {
	var out []float64
	for _, v := range x.([]any) {
		out = append(out, jf(v))
	}
	return out
}

func jfss(x any) [][]float64 {
	var out [][]float64
	for _, v := range x.([]any) {
		out = append(out, jfs(v))
	}
	return out
}

func jm(x any, keys ...string) any {
	for _, k := range keys {
		x = x.(map[string]any)[k]
	}
	return x
}

func jl(x any) []any { return x.([]any) }

func trlxNear(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= trlxTol*math.Max(1, math.Abs(b))
}

func checkNear(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !trlxNear(got, want) {
		t.Errorf("%s: got %.12g, TRLx %.12g", what, got, want)
	}
}

// GAE: TRLx runs get_advantages_and_returns over the padded minibatch
// (pads 0), so at a sample's real tokens it equals GAE over the sample
// alone, which is what ours computes; the pads get advantage 0. Whitening:
// TRLx whitens the whole padded tensor, pads included; Whiten over the same
// 18 entries gives TRLx's numbers, and so does AdvantagesTRLx on the padded
// rows (advantage_whitening trlx, the compat modes' default). real_tokens
// whitens over real tokens only: the pads' zeros would pull the mean toward
// 0 and shrink the spread by an amount that depends on how unequal the
// lengths are.
func TestTRLxGAE(t *testing.T) {
	fx := trlxFixture(t, "gae.json")
	for ci, c := range jl(fx["cases"]) {
		gamma, lam := jf(jm(c, "gamma")), jf(jm(c, "lam"))
		white := jm(c, "use_whitening").(bool)
		values, rewards := jfss(jm(c, "values")), jfss(jm(c, "rewards"))
		lens := jfs(jm(c, "real_lengths"))
		for _, v := range trlxVersions {
			wantAdv, wantRet := jfss(jm(c, "out", v, "advantages")), jfss(jm(c, "out", v, "returns"))
			var all []float64
			for i := range values {
				n := int(lens[i])
				adv, ret := GAE(rewards[i][:n], values[i][:n], gamma, lam)
				for k := range ret {
					checkNear(t, "case "+itoa(ci)+" "+v+" returns", ret[k], wantRet[i][k])
				}
				padded := make([]float64, len(values[i]))
				copy(padded, adv)
				all = append(all, padded...)
			}
			if white {
				mask := make([]bool, len(all))
				for i := range mask {
					mask[i] = true
				}
				Whiten(all, mask)
			}
			w := len(values[0])
			adv, ret := AdvantagesTRLx(rewards, values, gamma, lam, white)
			for i := range wantAdv {
				for k := range wantAdv[i] {
					checkNear(t, "case "+itoa(ci)+" "+v+" advantages", all[i*w+k], wantAdv[i][k])
					checkNear(t, "case "+itoa(ci)+" "+v+" AdvantagesTRLx advantages", adv[i][k], wantAdv[i][k])
					checkNear(t, "case "+itoa(ci)+" "+v+" AdvantagesTRLx returns", ret[i][k], wantRet[i][k])
				}
			}
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// whiten: Whiten over every entry is TRLx's whiten(shift_mean=True). Not
// compared: shift_mean=False (PPO never uses it), and one element, where
// TRLx gives NaN (variance over n−1 = 0) and Whiten leaves the value.
func TestTRLxWhiten(t *testing.T) {
	fx := trlxFixture(t, "whiten.json")
	for ci, c := range jl(fx["cases"]) {
		xs := jfss(jm(c, "xs"))
		var flat []float64
		for _, r := range xs {
			flat = append(flat, r...)
		}
		if !jm(c, "shift_mean").(bool) || len(flat) < 2 {
			continue
		}
		mask := make([]bool, len(flat))
		for i := range mask {
			mask[i] = true
		}
		Whiten(flat, mask)
		for _, v := range trlxVersions {
			want := jfss(jm(c, "out", v))
			for i, r := range want {
				for k := range r {
					checkNear(t, "case "+itoa(ci)+" "+v, flat[i*len(r)+k], r[k])
				}
			}
		}
	}
}

func TestTRLxRunningMoments(t *testing.T) {
	fx := trlxFixture(t, "running_moments.json")
	batches := jfss(fx["batches"])
	for _, v := range trlxVersions {
		states := jl(jm(fx, "out", v))
		r := NewRunningMoments()
		for i, b := range batches {
			m, s := r.Update(b)
			want := states[i+1]
			checkNear(t, v+" batch mean", m, jf(jm(want, "batch_mean")))
			checkNear(t, v+" batch std", s, jf(jm(want, "batch_std")))
			checkNear(t, v+" mean", r.Mean, jf(jm(want, "mean")))
			checkNear(t, v+" var", r.Var, jf(jm(want, "var")))
			checkNear(t, v+" std", r.Std, jf(jm(want, "std")))
			checkNear(t, v+" count", r.Count, jf(jm(want, "count")))
		}
	}
}

func TestTRLxKLController(t *testing.T) {
	fx := trlxFixture(t, "kl_controller.json")
	for _, v := range trlxVersions {
		ad := KLController{Value: jf(fx["init_kl_coef"]), Target: jf(fx["target"]), Horizon: jf(fx["horizon"])}
		fixed := KLController{Value: jf(fx["init_kl_coef"])}
		wantA, wantF := jfs(jm(fx, "out", v, "adaptive_values")), jfs(jm(fx, "out", v, "fixed_values"))
		for i, u := range jfss(fx["updates"]) {
			ad.Update(u[0], int(u[1]))
			fixed.Update(u[0], int(u[1]))
			checkNear(t, v+" adaptive β", ad.Value, wantA[i])
			checkNear(t, v+" fixed β", fixed.Value, wantF[i])
		}
	}
}

// The loss: Loss is the Go twin of the training graph's PPO loss (the
// graph is compared with it in the policy tests). Each TRLx statistic that
// Loss computes is compared; policy/approx_kl is TRLx's mean over ALL
// entries, pads included, where Loss averages over real tokens, so it is
// compared rescaled by n/numel.
func TestTRLxLoss(t *testing.T) {
	fx := trlxFixture(t, "ppo_loss.json")
	for ci, c := range jl(fx["cases"]) {
		flat := func(k string) []float64 {
			var out []float64
			for _, r := range jfss(jm(c, k)) {
				out = append(out, r...)
			}
			return out
		}
		lp, olp, val, oval, adv, ret := flat("logprobs"), flat("old_logprobs"), flat("values"), flat("old_values"), flat("advantages"), flat("returns")
		mf := flat("mask")
		mask := make([]bool, len(mf))
		n := 0.0
		for i, x := range mf {
			mask[i] = x != 0
			if mask[i] {
				n++
			}
		}
		cfg := LossConfig{ClipRange: jf(jm(c, "cfg", "cliprange")), ClipRangeValue: jf(jm(c, "cfg", "cliprange_value")), VFCoef: jf(jm(c, "cfg", "vf_coef"))}
		l := Loss(lp, olp, val, oval, adv, ret, make([]float64, len(lp)), mask, cfg)
		name := "case " + itoa(ci) + " "
		for _, v := range trlxVersions {
			out := jm(c, "out", v)
			st := func(k string) float64 { return jf(jm(out, "stats", k)) }
			checkNear(t, name+v+" loss", l.Total, jf(jm(out, "loss")))
			checkNear(t, name+v+" policy_loss", l.Policy, st("losses/policy_loss"))
			checkNear(t, name+v+" value_loss", l.Value, st("losses/value_loss"))
			checkNear(t, name+v+" policy/clipfrac", l.PolicyClipFrac, st("policy/clipfrac"))
			checkNear(t, name+v+" values/clipfrac", l.ValueClipFrac, st("values/clipfrac"))
			checkNear(t, name+v+" approx_kl (×n/numel)", l.ApproxKL*n/float64(len(lp)), st("policy/approx_kl"))
			var gl, gv []float64
			for _, r := range jfss(jm(out, "grad_logprobs")) {
				gl = append(gl, r...)
			}
			for _, r := range jfss(jm(out, "grad_values")) {
				gv = append(gv, r...)
			}
			for i := range gl {
				checkNear(t, name+v+" d/dlogprob", l.DLogProb[i], gl[i])
				checkNear(t, name+v+" d/dvalue", l.DValue[i], gv[i])
			}
		}
	}
}

// make_experience's reward assembly, chunk by chunk: the scores through
// ScaleScoresTRLx (clip, ref_std from the first chunk's clipped scores,
// running moments, division) against TRLx's, the per-sample sequence KL
// and its chunk mean, the controller's KL (ControllerKL), and the per-token
// KL penalty of TokenRewards (score_position last_token). The one
// difference: TRLx adds the score at the end of its slice [start:ends], up
// to two positions past the last real response token (past the EOS, on
// padding); TokenRewards adds it on the last real response token (the EOS),
// so the score is compared at that place and the slice's extra entries are
// not. TestTRLxScorePosition compares TRLx's placement itself.
func TestTRLxMakeExperience(t *testing.T) {
	fx := trlxFixture(t, "make_experience.json")
	pad, eos := int(jf(fx["pad_token_id"])), int(jf(fx["eos_token_id"]))
	for _, c := range jl(fx["cases"]) {
		name := jm(c, "name").(string)
		if name == "main-only dense (per-token) scores" {
			continue // per-token scores: this package has one score per sample
		}
		method := jm(c, "method").(map[string]any)
		clip := jf(method["cliprange_reward"])
		scale, _ := method["scale_reward"].(string)
		if scale == "" {
			scale = "none"
		}
		beta := jf(jm(c, "kl_coef"))
		for _, v := range trlxVersions {
			rm := NewRunningMoments()
			var refStd *float64
			var chunkKL []float64
			for ci, ch := range jl(jm(c, "out", v, "chunks")) {
				tag := name + " " + v + " chunk " + itoa(ci)
				raw := ch.(map[string]any)["reward_fn_output"]
				scores := jfs(raw)
				ScaleScoresTRLx(scores, clip, scale, &rm, &refStd)
				want := ch.(map[string]any)["scores_scaled"]
				for i, s := range jl(want) {
					w := s
					if l, ok := s.([]any); ok { // main keeps a [n, 1] tensor
						w = l[0]
					}
					checkNear(t, tag+" scaled score", scores[i], jf(w))
				}
				checkNear(t, tag+" ref_std", *refStd, jf(jm(ch, "ref_std")))
				after := jm(ch, "running_moments_after")
				checkNear(t, tag+" running mean", rm.Mean, jf(jm(after, "mean")))
				checkNear(t, tag+" running std", rm.Std, jf(jm(after, "std")))

				// The sequence KL over TRLx's positions.
				prompts, outs := jl(jm(ch, "prompt_tensors")), jl(jm(ch, "sample_outputs"))
				lp, ref := jfss(jm(ch, "logprobs_full")), jfss(jm(ch, "ref_logprobs_full"))
				klRows := jfss(jm(ch, "kl"))
				// The toy tokenizer has pad ≠ EOS: the EOS is a real
				// conditioning token there, so c counts it.
				P := len(jl(prompts[0]))
				resp := make([]int, len(outs))
				longest := 0
				for i, o := range outs {
					for _, id := range jfs(o) {
						if int(id) == pad {
							break
						}
						resp[i]++
					}
					longest = max(longest, resp[i])
				}
				var sum float64
				for i := range outs {
					p := 0
					for _, id := range jfs(prompts[i]) {
						if int(id) != pad {
							p++
						}
					}
					off := P - p
					k := TRLxKLPositions(p, resp[i], longest)
					kl := KL3(lp[i][off:off+k], ref[i][off:off+k])
					var want float64
					for _, x := range klRows[i] {
						want += x
					}
					checkNear(t, tag+" sequence KL of sample "+itoa(i), kl, want)
					sum += kl

					// Per-token rewards over the real response tokens.
					start := int(jf(jm(ch, "start")))
					n := resp[i]
					el := jl(jm(ch, "elements"))[i]
					wantR := jfs(jm(el, "rewards"))
					got, _, _ := TokenRewards(lp[i][start:start+n], ref[i][start:start+n], scores[i], beta)
					for k := 0; k < n; k++ {
						w := wantR[k]
						if k == len(wantR)-1 {
							w -= scores[i] // TRLx's score sits here
						}
						if k == n-1 {
							w += scores[i] // ours sits on the last real token
						}
						checkNear(t, tag+" reward of sample "+itoa(i)+" token "+itoa(k), got[k], w)
					}
					if len(wantR)-1 != n-1 {
						t.Logf("%s sample %d: TRLx puts the score at response position %d, past the %d real tokens (the last is %s); ours at %d",
							tag, i, len(wantR)-1, n, map[bool]string{true: "EOS", false: "not EOS"}[jfs(outs[i])[n-1] == float64(eos)], n-1)
					}
				}
				meanKL := sum / float64(len(outs))
				checkNear(t, tag+" mean_kl", meanKL, jf(jm(ch, "mean_kl")))
				chunkKL = append(chunkKL, meanKL)
			}
			checkNear(t, name+" "+v+" the controller's KL", ControllerKL(chunkKL), jf(jm(c, "out", v, "mean_kl_for_controller")))
		}
	}
}

// The learn loop's order (learn_loop.json, case B: no minibatching, as the
// paper's configs): which samples each optimiser step takes and after which
// steps β moves. The fork's order is compared id for id; main's shuffles
// come from torch's RNG, so its structure is compared: each pass a
// permutation of the phase cut into batch-size minibatches, β moving once
// after each pass with n = batch size.
func TestTRLxLearnLoopOrder(t *testing.T) {
	fx := trlxFixture(t, "learn_loop.json")
	var c any
	for _, x := range jl(fx["cases"]) {
		if jm(x, "config", "minibatch_size") == nil {
			c = x
		}
	}
	if c == nil {
		t.Fatal("no case without minibatching")
	}
	cfg := jm(c, "config")
	n, batch, epochs := int(jf(jm(cfg, "num_rollouts"))), int(jf(jm(cfg, "batch_size"))), int(jf(jm(cfg, "ppo_epochs")))
	total := int(jf(jm(cfg, "total_steps")))
	// TRLx's events for each version: per phase, the steps and β updates.
	type step struct {
		ids []int
		kl  int
	}
	events := func(v string) [][]step {
		var phases [][]step
		for _, e := range jl(jm(c, "out", v, "events")) {
			e := jl(e)
			switch e[0].(string) {
			case "make_experience":
				phases = append(phases, nil)
			case "loss":
				var ids []int
				for _, x := range jfs(e[1]) {
					ids = append(ids, int(x)%1000)
				}
				ph := &phases[len(phases)-1]
				*ph = append(*ph, step{ids: ids})
			case "kl_ctl.update":
				ph := phases[len(phases)-1]
				ph[len(ph)-1].kl++
				if int(jf(e[2])) != batch {
					t.Errorf("%s: β moved with n = %v, want the batch size %d", v, e[2], batch)
				}
			}
		}
		return phases
	}
	ident := func(pass int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = (i*7 + pass) % n // any permutation
		}
		return p
	}
	for _, mode := range []string{CompatFork, CompatCarper} {
		v := map[string]string{CompatFork: "fork", CompatCarper: "main"}[mode]
		plan := PhasePlan(mode, n, batch, epochs, ident)
		steps := 0
		for pi, ph := range events(v) {
			for k, s := range ph {
				steps++
				tag := v + " phase " + itoa(pi) + " step " + itoa(k)
				want := plan[k].KLUpdate
				if steps == total {
					want = 0 // learn() returns at total_steps before moving β; so does the loop in the compat modes
				}
				if s.kl != want {
					t.Errorf("%s: TRLx moves β %d times after it, PhasePlan %d", tag, s.kl, want)
				}
				if len(s.ids) != len(plan[k].Samples) {
					t.Errorf("%s: TRLx trains on %d samples, PhasePlan %d", tag, len(s.ids), len(plan[k].Samples))
				}
				if mode == CompatFork {
					for i := range s.ids {
						if i < len(plan[k].Samples) && s.ids[i] != plan[k].Samples[i] {
							t.Errorf("%s: TRLx trains on %v, PhasePlan %v", tag, s.ids, plan[k].Samples)
							break
						}
					}
				}
			}
			if mode == CompatCarper {
				// Each pass of main a permutation of the phase.
				mbs := (n + batch - 1) / batch
				for p := 0; p*mbs < len(ph); p++ {
					seen := map[int]bool{}
					for _, s := range ph[p*mbs : min((p+1)*mbs, len(ph))] {
						for _, id := range s.ids {
							if seen[id] {
								t.Errorf("main phase %d pass %d: sample %d twice", pi, p, id)
							}
							seen[id] = true
						}
					}
					if (p+1)*mbs <= len(ph) && len(seen) != n {
						t.Errorf("main phase %d pass %d: %d samples, want %d", pi, p, len(seen), n)
					}
				}
			}
		}
		if steps != total {
			t.Errorf("%s: %d steps, want total_steps %d", v, steps, total)
		}
	}
}

// The paper's two 410M configs through PhasePlan and KLController, with
// learn_loop.json's stub KL of phase k, 5 + 4·sin(0.37k + 0.5): β when each
// rollout phase starts, and the number of β updates, in both versions.
func TestTRLxPaperBeta(t *testing.T) {
	fx := trlxFixture(t, "learn_loop.json")
	for _, c := range jl(fx["paper_configs"]) {
		cfg := jm(c, "config")
		n, batch, epochs := int(jf(jm(cfg, "num_rollouts"))), int(jf(jm(cfg, "batch_size"))), int(jf(jm(cfg, "ppo_epochs")))
		total := int(jf(jm(cfg, "total_steps")))
		for _, mode := range []string{CompatFork, CompatCarper} {
			v := map[string]string{CompatFork: "fork", CompatCarper: "main"}[mode]
			tag := jm(cfg, "name").(string) + " " + v
			kl := KLController{Value: jf(jm(cfg, "init_kl_coef")), Target: jf(jm(cfg, "target")), Horizon: jf(jm(cfg, "horizon"))}
			plan := PhasePlan(mode, n, batch, epochs, func(int) []int { return make([]int, n) })
			var betas []float64
			step, updates := 0, 0
			for phase := 0; step < total; phase++ {
				betas = append(betas, kl.Value)
				phaseKL := 5 + 4*math.Sin(0.37*float64(phase)+0.5)
				for _, s := range plan {
					step++
					if step == total {
						break
					}
					for i := 0; i < s.KLUpdate; i++ {
						kl.Update(phaseKL, batch)
						updates++
					}
				}
			}
			want := jl(jm(c, "out", v, "beta_at_each_make_experience"))
			if len(want) != len(betas) {
				t.Errorf("%s: %d phases, TRLx %d", tag, len(betas), len(want))
			}
			for _, w := range want {
				w := jfs(w)
				if i := int(w[0]); i < len(betas) {
					checkNear(t, tag+" β at phase "+itoa(i), betas[i], w[1])
				}
			}
			if wu := int(jf(jm(c, "out", v, "kl_updates_total"))); wu != updates {
				t.Errorf("%s: %d β updates, TRLx %d", tag, updates, wu)
			}
		}
	}
}

// One TRLx training step (ppo_step.json: make_experience's elements
// collated and put through AcceleratePPOTrainer.loss): GAE over each padded
// row and Whiten over every entry give TRLx's advantages and returns, and
// Loss on the captured tensors its loss, statistics and gradients. This is
// TRLx's layout (its slice reaches past the EOS, its whitening counts the
// pads), which the compat modes' defaults follow (TestTRLxAdvantageWhitening
// builds it from the rollout); the fixes differ as TestTRLxGAE and
// TestTRLxMakeExperience say. The training graph's loss is compared with
// Loss in the policy tests.
func TestTRLxPPOStep(t *testing.T) {
	fx := trlxFixture(t, "ppo_step.json")
	for _, c := range jl(fx["cases"]) {
		for _, v := range trlxVersions {
			out := jm(c, "out", v)
			cp := func(k string) [][]float64 { return jfss(jm(out, "captured", k)) }
			rewards, values := cp("old_rewards"), cp("old_values")
			wantAdv, wantRet := cp("advantages"), cp("returns")
			var adv, ret []float64
			for i := range rewards {
				a, r := GAE(rewards[i], values[i], 1, 0.95)
				adv, ret = append(adv, a...), append(ret, r...)
			}
			all := make([]bool, len(adv))
			for i := range all {
				all[i] = true
			}
			Whiten(adv, all)
			w := len(rewards[0])
			for i := range wantAdv {
				for k := range wantAdv[i] {
					checkNear(t, v+" advantage", adv[i*w+k], wantAdv[i][k])
					checkNear(t, v+" return", ret[i*w+k], wantRet[i][k])
				}
			}
			mf := flatten(cp("mask"))
			mask := make([]bool, len(mf))
			for i, x := range mf {
				mask[i] = x != 0
			}
			checkTRLxStep(t, v, out, flatten(values), adv, ret, mask)
		}
	}
}

// checkTRLxStep runs Loss on TRLx's captured log-probs and new values of
// one version's output (out) with our old values, advantages, returns and
// mask, and compares the loss, its statistics and its gradients with
// TRLx's.
func checkTRLxStep(t *testing.T, v string, out any, oldValues, adv, ret []float64, mask []bool) {
	t.Helper()
	cp := func(k string) []float64 { return flatten(jfss(jm(out, "captured", k))) }
	l := Loss(cp("new_logprobs"), cp("old_logprobs"), cp("new_values"), oldValues, adv, ret,
		make([]float64, len(mask)), mask, LossConfig{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 1})
	st := func(k string) float64 { return jf(jm(out, "stats", k)) }
	checkNear(t, v+" loss", l.Total, jf(jm(out, "loss")))
	checkNear(t, v+" policy_loss", l.Policy, st("losses/policy_loss"))
	checkNear(t, v+" value_loss", l.Value, st("losses/value_loss"))
	checkNear(t, v+" policy/clipfrac", l.PolicyClipFrac, st("policy/clipfrac"))
	checkNear(t, v+" values/clipfrac", l.ValueClipFrac, st("values/clipfrac"))
	gl, gv := cp("grad_logprobs"), cp("grad_values")
	for i := range gl {
		checkNear(t, v+" d/dlogprob", l.DLogProb[i], gl[i])
		checkNear(t, v+" d/dvalue", l.DValue[i], gv[i])
	}
}

// flatten joins rows.
func flatten(x [][]float64) []float64 {
	var o []float64
	for _, r := range x {
		o = append(o, r...)
	}
	return o
}

// score_position trlx against make_experience (every case but main's dense
// scores, both versions, both chunks): TRLxCounted and TRLxSpan give each
// element's slice length (ends − start, the pad-counted tokens + 2 cut at
// the chunk's width), and TokenRewardsTRLx over the full-sequence log-probs
// sliced there, with the scaled score, gives every element's rewards,
// entries past the response and the score at the slice's end included; the
// element's log-probs and values are those slices.
func TestTRLxScorePosition(t *testing.T) {
	fx := trlxFixture(t, "make_experience.json")
	pad := int64(jf(fx["pad_token_id"]))
	for _, c := range jl(fx["cases"]) {
		name := jm(c, "name").(string)
		if name == "main-only dense (per-token) scores" {
			continue
		}
		method := jm(c, "method").(map[string]any)
		scale, _ := method["scale_reward"].(string)
		if scale == "" {
			scale = "none"
		}
		beta := jf(jm(c, "kl_coef"))
		for _, v := range trlxVersions {
			rm := NewRunningMoments()
			var refStd *float64
			for ci, ch := range jl(jm(c, "out", v, "chunks")) {
				tag := name + " " + v + " chunk " + itoa(ci)
				scores := jfs(jm(ch, "reward_fn_output"))
				ScaleScoresTRLx(scores, jf(method["cliprange_reward"]), scale, &rm, &refStd)
				els, outs := jl(jm(ch, "elements")), jl(jm(ch, "sample_outputs"))
				lp, ref, val := jfss(jm(ch, "logprobs_full")), jfss(jm(ch, "ref_logprobs_full")), jfss(jm(ch, "values_model_output"))
				start, ends := int(jf(jm(ch, "start"))), jfs(jm(ch, "ends"))
				longest := len(jl(outs[0])) // the chunk's width: its longest response
				for i := range els {
					resp := toIDs(jfs(outs[i]))
					counted := TRLxCounted(resp, pad)
					l := TRLxSpan(counted, longest)
					wantR := jfs(jm(els[i], "rewards"))
					if l != len(wantR) || l != min(int(ends[i]), len(lp[i]))-start {
						t.Fatalf("%s sample %d: span %d, TRLx's slice %d (ends %v, start %d)", tag, i, l, len(wantR), ends[i], start)
					}
					got := TokenRewardsTRLx(lp[i][start:start+l], ref[i][start:start+l], counted, scores[i], beta)
					for k := range wantR {
						what := tag + " sample " + itoa(i) + " entry " + itoa(k)
						checkNear(t, what+" reward", got[k], wantR[k])
						checkNear(t, what+" log-prob", lp[i][start+k], jfs(jm(els[i], "logprobs"))[k])
						checkNear(t, what+" value", val[i][start+k], jfs(jm(els[i], "values"))[k])
					}
				}
			}
		}
	}
}

func toIDs(xs []float64) []int64 {
	ids := make([]int64, len(xs))
	for i, x := range xs {
		ids[i] = int64(x)
	}
	return ids
}

// advantage_whitening trlx against ppo_step (make_experience's 'running'
// case, both chunks' five elements as one batch, both versions): the
// elements rebuilt from the rollout (TRLxSpan, TokenRewardsTRLx over the
// full-sequence log-probs, the values sliced there) equal the batch TRLx
// collated; AdvantagesTRLx on them gives its advantages and returns;
// TRLxCounted gives its loss mask (pad-counted response tokens); and Loss
// on those gives its loss, statistics and gradients.
func TestTRLxAdvantageWhitening(t *testing.T) {
	me, fx := trlxFixture(t, "make_experience.json"), trlxFixture(t, "ppo_step.json")
	pad := int64(jf(me["pad_token_id"]))
	for _, c := range jl(fx["cases"]) {
		from := jm(c, "from_make_experience_case").(string)
		var mc any
		for _, x := range jl(me["cases"]) {
			if jm(x, "name") == from {
				mc = x
			}
		}
		if mc == nil {
			t.Fatalf("no make_experience case %q", from)
		}
		method := jm(mc, "method").(map[string]any)
		scale, _ := method["scale_reward"].(string)
		if scale == "" {
			scale = "none"
		}
		for _, v := range trlxVersions {
			rm := NewRunningMoments()
			var refStd *float64
			var rewards, values [][]float64
			var trained []int
			for _, ch := range jl(jm(mc, "out", v, "chunks")) {
				scores := jfs(jm(ch, "reward_fn_output"))
				ScaleScoresTRLx(scores, jf(method["cliprange_reward"]), scale, &rm, &refStd)
				outs := jl(jm(ch, "sample_outputs"))
				lp, ref, val := jfss(jm(ch, "logprobs_full")), jfss(jm(ch, "ref_logprobs_full")), jfss(jm(ch, "values_model_output"))
				start := int(jf(jm(ch, "start")))
				for i := range outs {
					resp := toIDs(jfs(outs[i]))
					counted := TRLxCounted(resp, pad)
					l := TRLxSpan(counted, len(resp))
					rewards = append(rewards, TokenRewardsTRLx(lp[i][start:start+l], ref[i][start:start+l], counted, scores[i], jf(jm(mc, "kl_coef"))))
					values = append(values, val[i][start:start+l])
					trained = append(trained, counted)
				}
			}
			out := jm(c, "out", v)
			cp := func(k string) [][]float64 { return jfss(jm(out, "captured", k)) }
			wantR, wantV, wantMask := cp("old_rewards"), cp("old_values"), cp("mask")
			if len(wantR) != len(rewards) {
				t.Fatalf("%s: %d elements, TRLx's batch %d", v, len(rewards), len(wantR))
			}
			adv, ret := AdvantagesTRLx(rewards, values, 1, 0.95, true)
			wantAdv, wantRet := cp("advantages"), cp("returns")
			var fa, fr, fv []float64
			var mask []bool
			for i := range wantR {
				if len(adv[i]) != len(wantR[i]) {
					t.Fatalf("%s: padded width %d, TRLx's %d", v, len(adv[i]), len(wantR[i]))
				}
				for k := range wantR[i] {
					what := v + " element " + itoa(i) + " entry " + itoa(k)
					r, val := 0.0, 0.0
					if k < len(rewards[i]) {
						r, val = rewards[i][k], values[i][k]
					}
					checkNear(t, what+" reward", r, wantR[i][k])
					checkNear(t, what+" value", val, wantV[i][k])
					checkNear(t, what+" advantage", adv[i][k], wantAdv[i][k])
					checkNear(t, what+" return", ret[i][k], wantRet[i][k])
					if m := k < trained[i]; m != (wantMask[i][k] != 0) {
						t.Errorf("%s: in the loss %v, TRLx %v", what, m, wantMask[i][k] != 0)
					}
					mask = append(mask, k < trained[i])
				}
				fa, fr, fv = append(fa, adv[i]...), append(fr, ret[i]...), append(fv, padTo(values[i], len(adv[i]))...)
			}
			checkTRLxStep(t, v, out, fv, fa, fr, mask)
		}
	}
}

func padTo(x []float64, n int) []float64 {
	out := make([]float64, n)
	copy(out, x)
	return out
}
