package reward

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"irl/rewardhead"
	"irl/weights"
)

func identity(t *testing.T, src Source) map[string]string {
	t.Helper()
	id, err := Identity(src)
	if err != nil {
		t.Fatal(err)
	}
	if id == nil {
		t.Fatalf("%T has no identity", src)
	}
	return id
}

func parsed(t *testing.T, spec string, o Options) Source {
	t.Helper()
	if o.Session.Threads == 0 {
		o.Session = single
	}
	src, err := Parse(spec, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// diff lists the keys whose values differ between two identities.
func diff(a, b map[string]string) []string {
	var out []string
	for k := range a {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// The same reward read from elsewhere has the same identity; every change
// that changes rewards — a file's content, the noise, the label, the
// joiner, the relative field, the transform, the program or its script —
// changes it, in the key that says which.
func TestIdentity(t *testing.T) {
	tox, non := writeLists(t)
	lex := identity(t, parsed(t, "lexicon:"+tox+","+non, Options{Seed: 3}))
	if lex["kind"] != "lexicon" || lex["noise"] != "0.2" {
		t.Errorf("lexicon %v", lex)
	}
	moved := t.TempDir()
	for _, f := range []string{tox, non} {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(moved, filepath.Base(f)), b, 0o644)
	}
	if got := identity(t, parsed(t, "lexicon:"+filepath.Join(moved, "toxic.txt")+","+filepath.Join(moved, "nontoxic.txt"), Options{Seed: 3})); !reflect.DeepEqual(got, lex) {
		t.Errorf("moved word lists: %v, want %v", got, lex)
	}
	os.WriteFile(filepath.Join(moved, "toxic.txt"), []byte("nasty\nvile\ncruel\n"), 0o644)
	for _, tc := range []struct {
		spec string
		o    Options
		want []string
	}{
		{"lexicon:" + filepath.Join(moved, "toxic.txt") + "," + non, Options{Seed: 3}, []string{"toxic_words_sha256"}},
		{"lexicon:" + tox + "," + non, Options{Seed: 3, Noise: 0.1}, []string{"noise"}},
		{"lexicon:" + tox + "," + non, Options{Seed: 3, Relative: "original"}, []string{"relative"}},
		{"lexicon:" + tox + "," + non, Options{Seed: 3, Transform: TransformOfficialRF2}, []string{"transform"}},
	} {
		if d := diff(lex, identity(t, parsed(t, tc.spec, tc.o))); !reflect.DeepEqual(d, tc.want) {
			t.Errorf("%s %+v: differs in %v, want %v", tc.spec, tc.o, d, tc.want)
		}
	}

	cls := identity(t, parsed(t, "classifier:"+classifierFixture, Options{Tokenizer: byteTokenizer}))
	fp, _ := weights.Fingerprint(classifierFixture)
	if cls["kind"] != "classifier" || cls["model_fingerprint"] != fp || cls["label"] != "toxic" || cls["tokenizer_sha256"] == "" {
		t.Errorf("classifier %v", cls)
	}
	for _, tc := range []struct {
		o    Options
		want []string
	}{
		{Options{Tokenizer: byteTokenizer, Label: "neutral"}, []string{"label"}},
		{Options{Tokenizer: byteTokenizer, Join: " "}, []string{"join"}},
		{Options{Tokenizer: "../testdata/roberta-bpe/tokenizer.json"}, []string{"tokenizer_sha256"}},
	} {
		if d := diff(cls, identity(t, parsed(t, "classifier:"+classifierFixture, tc.o))); !reflect.DeepEqual(d, tc.want) {
			t.Errorf("classifier %+v: differs in %v, want %v", tc.o, d, tc.want)
		}
	}

	model := tinyEncoder(t)
	efp, _ := weights.Fingerprint(model)
	path, _ := writeHead(t, rewardhead.FeatureInfo{Model: model, Fingerprint: efp, Layer: "1", Pool: "last", MaxLength: "64", Dim: 32}, 1)
	head := identity(t, parsed(t, "head:"+path, Options{}))
	if head["kind"] != "head" || head["model_fingerprint"] != efp || head["head_sha256"] == "" || head["tokenizer_sha256"] == "" || head["truncate"] != "left" {
		t.Errorf("head %v", head)
	}
	other, _ := writeHead(t, rewardhead.FeatureInfo{Model: model, Fingerprint: efp, Layer: "1", Pool: "last", MaxLength: "64", Dim: 32}, 2)
	if d := diff(head, identity(t, parsed(t, "head:"+other, Options{}))); !reflect.DeepEqual(d, []string{"head_sha256"}) {
		t.Errorf("another head differs in %v", d)
	}

	script := filepath.Join(t.TempDir(), "child.sh")
	os.WriteFile(script, []byte("while read -r l; do echo '{\"reward\": 1}'; done\n"), 0o644)
	cmd := identity(t, parsed(t, "cmd:sh "+script, Options{}))
	if cmd["kind"] != "cmd" || cmd["program_sha256"] == "" || cmd["arg1_sha256"] == "" {
		t.Errorf("cmd %v", cmd)
	}
	os.WriteFile(script, []byte("while read -r l; do echo '{\"reward\": 2}'; done\n"), 0o644)
	if d := diff(cmd, identity(t, parsed(t, "cmd:sh "+script, Options{}))); !reflect.DeepEqual(d, []string{"arg1_sha256"}) {
		t.Errorf("an edited script differs in %v", d)
	}
}
