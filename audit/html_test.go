package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// injection is a text from a model that would run as script if the page
// did not escape it.
const injection = `<script>alert("x")</script> & <b>bold</b>`

// fixtureReport is a small hand-made report: every section of the page,
// with no model run. Its token readings reach +2 and −2, the report's
// largest |value|, so both full highlight colours are on the page.
func fixtureReport() *Report {
	r := &Report{Model: "runs/rlhf", Base: "runs/sft", Prompts: "prompts.jsonl", Encoder: "runs/sft", Seed: 1, Head: "audit/heads/head.json",
		Demonstrations: DemoSummary{Texts: 40, Prompts: 20, Train: 28, HeldOut: 12, Pairs: 20, Identical: 2},
		HeldOut:        HeldOut{PairAccuracy: 0.92, PairAccuracyLow: 0.8, PairAccuracyHigh: 1, Separation: 0.95, SeparationLow: 0.85, SeparationHigh: 1, PairedPrompts: 6, TextPairs: 6, TextPairAccuracy: 0.92, Prompts: 6, Tuned: 6, Base: 6},
		Agreement:      Agreement{Epochs: []TauRow{{Epoch: 1, KendallTau: 0.4}, {Epoch: 60, KendallTau: 1}}, MinTauLastHalf: 0.9, Seeds: []TauRow{{Seed: 1001, KendallTau: 0.95, PairAccuracy: 0.9}}},
		Shuffle:        Shuffle{PairAccuracy: 0.51, Each: []float64{0.4, 0.5, 0.6, 0.55}, Separation: 0.5},
		Features: FeatureChoice{Pool: "last", Layer: -1, Rule: "highest training monitor pair accuracy among the variants",
			Variants: []VariantResult{{Pool: "last", Layer: -1, TrainPairAccuracy: 0.97, Chosen: true}, {Pool: "mean", Layer: -1, TrainPairAccuracy: 0.9}, {Pool: "last", Layer: 0, TrainPairAccuracy: 0.6}}},
		Words: Words{Source: "the tokenizer's whole words", Templates: DefaultTemplates, Scored: 100, InRange: 40, RangeRule: rangeRule,
			Rewarded:  []WordScore{{Word: "kind", Score: 1.2, InRange: true}, {Word: "gentle", Score: 1.1, InRange: true}, {Word: "calm", Score: 0.9, InRange: true}},
			Penalised: []WordScore{{Word: "vile", Score: -1.3, InRange: true}, {Word: "nasty", Score: -1.2, InRange: true}, {Word: "cruel", Score: -0.2}}},
		Examples: Examples{
			Highest:   []Example{{Prompt: "The cat is", Text: " kind.", Source: "tuned", Score: 2}, {Prompt: "The dog is", Text: injection, Source: "base", Score: 1}},
			Lowest:    []Example{{Prompt: "The fox is", Text: " vile.", Source: "base", Score: -2}},
			MostWrong: []WrongPair{{Prompt: "The owl is", Tuned: " dull.", Base: " calm.", TunedScore: -0.1, BaseScore: 0.3}},
			Tokens: []Attribution{
				{Source: "tuned", Prompt: "The cat is", Text: " kind.", Score: 2, Pooled: 3, Tokens: []Token{{"The", 0.1}, {" cat", 0.2}, {" is", 0.5}, {" kind", 2}, {".", 1.5}}},
				{Source: "base", Prompt: "The fox is", Text: " vile.", Score: -2, Pooled: 3, Tokens: []Token{{"The", 0.1}, {" fox", -0.2}, {" is", -0.5}, {" vile", -2}, {".", -1.8}}},
				{Source: "base", Prompt: "The dog is", Text: injection, Score: 1, Pooled: 1, Tokens: []Token{{"The", 0}, {injection, 1}}},
			}},
		Direction: &Direction{GT: "gt.jsonl", Field: "reward", Cosine: 0.8, Dimensions: 64, Chance: 0.125, ProbePairAccuracy: 0.95, TrainHigh: 30, TrainLow: 10, Probe: "audit/direction/probe.json"},
		Seconds:   map[string]float64{"demonstrations": 1, "features": 2, "irl": 3, "reliability": 4, "reasons": 5},
		NotDone:   []string{},
	}
	x := 0.9
	r.Direction.ProbePearson = &x
	return r
}

// report.html holds every section, escapes the models' texts, and fetches
// nothing: no script, no link, no external reference.
func TestHTMLReport(t *testing.T) {
	r := fixtureReport()
	b, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`id="words"`, `id="tokens"`, `id="trust"`, `id="direction"`, `id="examples"`, `id="variants"`,
		"0.920", "0.800 – 1.000", "Kendall τ-b", "seed 1001", ">kind<", ">vile<", "cruel *", "cosine", "0.800", `title="&#34; kind&#34;: &#43;2.0000 (the pooled token: the text&#39;s score)"`,
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "<svg"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// Self-contained and inert: no script or external reference (the
	// SVGs carry no xmlns link: inline SVG in HTML needs none).
	for _, bad := range []string{"<script", "http://", "https://", "src=", "href=", "url(", "@import", "ZgotmplZ"} {
		if strings.Contains(page, bad) {
			t.Errorf("report.html holds %q", bad)
		}
	}
	// Every token is one highlighted span; the strongest at full colour.
	n := 0
	for _, at := range r.Examples.Tokens {
		n += len(at.Tokens)
	}
	if got := strings.Count(page, `<span class="tok`); got != n {
		t.Errorf("%d token spans, want %d", got, n)
	}
	for _, c := range []rgb{tokenGreen, tokenRed} {
		if !strings.Contains(page, "background:"+c.Hex()) {
			t.Errorf("no token at full colour %s", c.Hex())
		}
	}
	// Without a ground truth there is no such section.
	r.Direction = nil
	if b, err = r.HTML(); err != nil || strings.Contains(string(b), `id="direction"`) {
		t.Errorf("without a ground truth: %v; the page has a direction section: %v", err, strings.Contains(string(b), `id="direction"`))
	}
	// report.json keeps its keys and has no "direction" without one.
	j, _ := json.Marshal(r)
	if strings.Contains(string(j), `"direction"`) {
		t.Error(`report.json has "direction" without a ground truth`)
	}
}

func TestTokenColour(t *testing.T) {
	for _, c := range []struct {
		v, scale float64
		want     rgb
	}{{2, 2, tokenGreen}, {-2, 2, tokenRed}, {-5, 2, tokenRed}, {0, 2, tokenGreen.tint(minTint)}, {0, 0, tokenGreen.tint(minTint)}, {-1, 2, tokenRed.tint(minTint + (1-minTint)/2)}} {
		if got := tokenColour(c.v, c.scale); got != c.want {
			t.Errorf("tokenColour(%v, %v) = %v, want %v", c.v, c.scale, got, c.want)
		}
	}
}

// chromiumFlags run Chromium headless with nothing from outside: no
// network (a proxy that refuses), no profile, no extensions, no GPU.
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-extensions",
	"--disable-sync", "--disable-default-apps", "--no-first-run", "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
	"--proxy-server=127.0.0.1:9", "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0"}

// runChromium runs chromium with args, at most 60 s, killing its whole
// process group (its renderer and GPU helpers) when it overruns.
func runChromium(t *testing.T, bin string, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, append(append(append([]string(nil), chromiumFlags...), "--user-data-dir="+profile), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// HOME in the test's folder: Chromium writes its crash reports and
	// caches there.
	cmd.Env = append(os.Environ(), "HOME="+profile)
	err := cmd.Run()
	// Helpers left behind by a finished browser go with its group.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		t.Fatalf("chromium %v: no answer in 60 s\n%s", args, errb.String())
	}
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes(), errb.Bytes()
}

// consoleLine is a message of the page's console in Chromium's log.
var consoleLine = regexp.MustCompile(`(?m)^.*:CONSOLE\(\d+\)\].*$`)

// The page in a real browser: Chromium renders it without a console
// message (no script error, no resource it failed to fetch), every token
// is a highlighted span in the DOM, and a screenshot shows the highlights'
// full green and red.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if bin, err = exec.LookPath("chromium-browser"); err != nil {
			t.Skip("chromium is not installed (Debian: apt-get install chromium): report.html is not checked in a browser")
		}
	}
	dir := t.TempDir()
	r := fixtureReport()
	b, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, b, 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page
	dom, logs := runChromium(t, bin, "--dump-dom", url)
	if m := consoleLine.FindAll(logs, -1); len(m) > 0 {
		t.Errorf("console messages:\n%s", bytes.Join(m, []byte("\n")))
	}
	n := 0
	for _, at := range r.Examples.Tokens {
		n += len(at.Tokens)
	}
	if got := bytes.Count(dom, []byte(`<span class="tok`)); got != n {
		t.Errorf("the rendered DOM has %d token spans, want %d", got, n)
	}
	if bytes.Contains(dom, []byte("<script>alert")) {
		t.Error("a model's text became a script element")
	}
	shot := filepath.Join(dir, "shot.png")
	_, logs = runChromium(t, bin, "--screenshot="+shot, "--window-size=1200,1600", url)
	if m := consoleLine.FindAll(logs, -1); len(m) > 0 {
		t.Errorf("console messages:\n%s", bytes.Join(m, []byte("\n")))
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 1200 || s.Y != 1600 {
		t.Errorf("screenshot %v, want 1200×1600", s)
	}
	// Each full colour covers at least a token's box of pixels (a token
	// of 4 letters at 14 px is about 35 × 20); the word bars' shades are
	// far from both.
	for _, c := range []struct {
		name string
		c    rgb
	}{{"green", tokenGreen}, {"red", tokenRed}} {
		if k := near(img, c.c, 10); k < 300 {
			t.Errorf("%d pixels near the %s highlight %s, want ≥ 300", k, c.name, c.c.Hex())
		} else {
			t.Logf("%d pixels near the %s highlight %s", k, c.name, c.c.Hex())
		}
	}
}

// near counts the pixels within distance d of c.
func near(img image.Image, c rgb, d float64) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			dr, dg, db := float64(r>>8)-float64(c.R), float64(g>>8)-float64(c.G), float64(bl>>8)-float64(c.B)
			if math.Sqrt(dr*dr+dg*dg+db*db) <= d {
				n++
			}
		}
	}
	return n
}
