package reward

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"irl/atomicfile"
	"irl/weights"
)

// Identifier is a Source that can say exactly what it computes: its kind,
// every setting that changes its rewards, and a fingerprint of every file
// it reads. Two sources with the same identity give the same rewards, so a
// resumed run compares identities to refuse a reward other than the one
// it was trained on. Paths are left out where a fingerprint stands for
// the file (a moved model is the same model), as checkpoints treat models.
type Identifier interface {
	Identity() (map[string]string, error)
}

// Identity returns src's identity when it is an Identifier (nil
// otherwise).
func Identity(src Source) (map[string]string, error) {
	if id, ok := src.(Identifier); ok {
		return id.Identity()
	}
	return nil, nil
}

// wordsSHA256 fingerprints a word list as the lexicon holds it (sorted,
// lower-cased): comments, blank lines and order in its file do not change
// a reward, so they do not change the identity.
func wordsSHA256(words map[string]bool) string {
	h := sha256.New()
	for _, w := range slices.Sorted(maps.Keys(words)) {
		h.Write([]byte(w))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Identity is the two word lists' fingerprints, the noise and its seed.
func (l *Lexicon) Identity() (map[string]string, error) {
	return map[string]string{
		"kind": "lexicon", "toxic_words_sha256": wordsSHA256(l.Toxic), "nontoxic_words_sha256": wordsSHA256(l.NonToxic),
		"noise": fmt.Sprint(l.Noise), "seed": fmt.Sprint(l.Seed),
	}, nil
}

// Identity is the head file's SHA-256, its encoder's fingerprint and
// tokenizer, and how texts are cut.
func (s *HeadSource) Identity() (map[string]string, error) {
	head, err := atomicfile.SHA256(s.path)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", s.path, err)
	}
	id := map[string]string{
		"kind": "head", "head_sha256": head, "model_fingerprint": s.fingerprint,
		"max_length": fmt.Sprint(s.p.MaxLength()), "truncate": string(s.trunc),
	}
	if s.tokPath != "" {
		if id["tokenizer_sha256"], err = atomicfile.SHA256(s.tokPath); err != nil {
			return nil, fmt.Errorf("head %s: its encoder's tokenizer: %w", s.path, err)
		}
	}
	return id, nil
}

// Identity is the classifier's fingerprint, its label, the joiner, how
// texts are cut, and its tokenizer's SHA-256 when it has one.
func (s *ClassifierSource) Identity() (map[string]string, error) {
	fp, err := weights.Fingerprint(s.model)
	if err != nil {
		return nil, fmt.Errorf("classifier %s: %w", s.model, err)
	}
	id := map[string]string{
		"kind": "classifier", "model_fingerprint": fp, "label": s.labels[s.label], "join": s.join,
		"max_length": fmt.Sprint(s.maxLen), "truncate": string(s.trunc),
	}
	if s.tok != nil {
		if id["tokenizer_sha256"], err = atomicfile.SHA256(s.tokPath); err != nil {
			return nil, fmt.Errorf("classifier %s: its tokenizer: %w", s.model, err)
		}
	}
	return id, nil
}

// Identity is the command line, the SHA-256 of the program it runs and of
// every argument that names a file (a script, a model): a program's
// rewards are whatever those files make them.
func (s *CmdSource) Identity() (map[string]string, error) {
	id := map[string]string{"kind": "cmd", "command": strings.Join(s.argv, " ")}
	prog, err := exec.LookPath(s.argv[0])
	if err != nil {
		return nil, fmt.Errorf("cmd reward: %w", err)
	}
	if id["program_sha256"], err = atomicfile.SHA256(prog); err != nil {
		return nil, fmt.Errorf("cmd reward: %w", err)
	}
	for i, a := range s.argv[1:] {
		if st, err := os.Stat(a); err == nil && st.Mode().IsRegular() {
			if id[fmt.Sprintf("arg%d_sha256", i+1)], err = atomicfile.SHA256(a); err != nil {
				return nil, fmt.Errorf("cmd reward: %w", err)
			}
		}
	}
	return id, nil
}

// Identity adds the field of the originals to the wrapped source's.
func (r *Relative) Identity() (map[string]string, error) {
	return withIdentity(r.inner, "relative", r.field)
}

// Identity adds the transform to the wrapped source's.
func (t *Transformed) Identity() (map[string]string, error) {
	return withIdentity(t.inner, "transform", t.name)
}

func withIdentity(inner Source, key, value string) (map[string]string, error) {
	id, err := Identity(inner)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(id)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value
	return out, nil
}

// headTokenizer is the tokenizer file a head's features pipeline reads, p,
// or "" when there is none.
func headTokenizer(p string) string {
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
