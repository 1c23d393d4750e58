package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"irl/atomicfile"
)

// Manifest identifies a part: which shard of which run it is. It is
// written after the part's data, beside a file part (PART.shard.json) or
// inside a folder part (DIR/shard.json), so a manifest means a whole part.
type Manifest struct {
	// Command is the command that wrote the part ("features", "score",
	// "generate", "eval toxicity").
	Command string `json:"command"`
	Shard   int    `json:"shard"`
	Shards  int    `json:"shards"`
	// From is where the shard came from (--shard, or the environment).
	From string `json:"from"`
	// Input is the input file as given, InputSHA256 its bytes' hash, and
	// Total how many rows (or prompts) the run divides among the shards.
	Input       string `json:"input"`
	InputSHA256 string `json:"input_sha256"`
	Total       int    `json:"total"`
	// Model and its fingerprint (weights and configuration), when the
	// command runs one.
	Model            string `json:"model,omitempty"`
	ModelFingerprint string `json:"model_fingerprint,omitempty"`
	// Settings are the flags that shape the output, by name.
	Settings map[string]string `json:"settings"`
	// Units given to this shard: their indices among the divided rows, and
	// the input data row of each. They are the same for every command but
	// eval toxicity, which divides its selected prompts, so the file holds
	// units only where they differ from rows.
	Units []int `json:"units,omitempty"`
	Rows  []int `json:"rows"`
	// Part is the data file or folder, relative to the manifest's folder
	// ("" when the shard was given no rows), and PartSHA256 the hash of
	// the file (of DataFile inside a folder part).
	Part       string `json:"part"`
	DataFile   string `json:"data_file,omitempty"`
	PartSHA256 string `json:"part_sha256,omitempty"`

	// path is where the manifest was read from.
	path string
}

// ManifestName is a folder part's manifest; a file part's is its name
// followed by ManifestSuffix.
const (
	ManifestName   = "shard.json"
	ManifestSuffix = ".shard.json"
)

// Path is where the manifest was read from.
func (m *Manifest) Path() string { return m.path }

// PartPath is the part's data: the file, or the folder.
func (m *Manifest) PartPath() string {
	if m.Part == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(m.path), m.Part)
}

// DataPath is the part's hashed data file.
func (m *Manifest) DataPath() string {
	if m.DataFile != "" {
		return filepath.Join(m.PartPath(), m.DataFile)
	}
	return m.PartPath()
}

// ManifestPath is where a part's manifest goes: inside a folder part,
// beside a file part.
func ManifestPath(part string, folder bool) string {
	if folder {
		return filepath.Join(part, ManifestName)
	}
	return part + ManifestSuffix
}

// Write hashes the part's data and writes its manifest: beside a file part,
// inside a folder part (whose data file, hashed, is dataFile). part "" is a
// shard given no rows, whose manifest stands alone at manifestPath.
func (m *Manifest) Write(manifestPath, part string, folder bool, dataFile string) error {
	if part != "" {
		data := part
		m.Part, m.DataFile = filepath.Base(part), ""
		if folder {
			m.Part, m.DataFile = ".", dataFile
			data = filepath.Join(part, dataFile)
		}
		sum, err := atomicfile.SHA256(data)
		if err != nil {
			return err
		}
		m.PartSHA256 = sum
	}
	file := *m
	if slices.Equal(file.Units, file.Rows) {
		file.Units = nil
	}
	b, err := json.MarshalIndent(&file, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(manifestPath, append(b, '\n'))
}

// ReadManifest reads one manifest.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s: not a shard manifest: %w", path, err)
	}
	if m.Units == nil {
		m.Units = m.Rows
	}
	if m.Command == "" || m.Shards < 1 || m.Shard < 0 || m.Shard >= m.Shards || len(m.Rows) != len(m.Units) {
		return nil, fmt.Errorf("%s: not a shard manifest (command, shard I of N, and rows beside units are required)", path)
	}
	m.path = path
	return m, nil
}

// Find turns the merge's arguments into manifests: a part file (its
// PART.shard.json beside it), a part folder (holding shard.json), a
// manifest itself, or a folder of parts (every *.shard.json in it and
// every sub-folder holding a shard.json).
func Find(args []string) ([]*Manifest, error) {
	var paths []string
	for _, a := range args {
		a = filepath.Clean(a)
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", a, err)
		}
		switch {
		case strings.HasSuffix(a, ManifestSuffix) || filepath.Base(a) == ManifestName:
			paths = append(paths, a)
		case !st.IsDir():
			paths = append(paths, a+ManifestSuffix)
		case exists(filepath.Join(a, ManifestName)):
			paths = append(paths, filepath.Join(a, ManifestName))
		default:
			found, err := inFolder(a)
			if err != nil {
				return nil, err
			}
			paths = append(paths, found...)
		}
	}
	var ms []*Manifest
	for _, p := range paths {
		m, err := ReadManifest(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no manifest (a part is whole only once its manifest is written: was its shard finished?)", p)
		}
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no parts in %s", strings.Join(args, " "))
	}
	return ms, nil
}

func inFolder(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		p := filepath.Join(dir, e.Name())
		switch {
		case atomicfile.IsTemp(e.Name()):
		case !e.IsDir() && strings.HasSuffix(e.Name(), ManifestSuffix):
			out = append(out, p)
		case e.IsDir() && exists(filepath.Join(p, ManifestName)):
			out = append(out, filepath.Join(p, ManifestName))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no parts (no *%s files, no folders with %s)", dir, ManifestSuffix, ManifestName)
	}
	return out, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Check verifies that the parts make one run whole: the same command,
// input, model and settings; one part for each shard 0…N−1 of one N; every
// unit given to exactly the shard it belongs to; each part's data as its
// manifest hashed it. It returns the parts in shard order.
func Check(ms []*Manifest) ([]*Manifest, error) {
	first := ms[0]
	for _, m := range ms[1:] {
		if err := same(first, m); err != nil {
			return nil, err
		}
	}
	byShard := make([]*Manifest, first.Shards)
	for _, m := range ms {
		if prev := byShard[m.Shard]; prev != nil {
			return nil, fmt.Errorf("shard %d/%d is given twice: %s and %s", m.Shard, m.Shards, prev.path, m.path)
		}
		byShard[m.Shard] = m
	}
	var missing []string
	for i, m := range byShard {
		if m == nil {
			missing = append(missing, fmt.Sprintf("%d/%d", i, first.Shards))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing shard %s of the run in %s (%d of %d parts given)", strings.Join(missing, ", "), filepath.Dir(first.path), len(ms), first.Shards)
	}
	spec := Spec{Count: first.Shards}
	for _, m := range byShard {
		spec.Index = m.Shard
		if want := spec.Pick(m.Total); !slices.Equal(m.Units, want) {
			return nil, fmt.Errorf("%s: shard %d/%d holds units other than i mod %d = %d", m.path, m.Shard, m.Shards, m.Shards, m.Shard)
		}
		if m.Part == "" {
			if len(m.Units) != 0 {
				return nil, fmt.Errorf("%s: shard %d/%d names no part but was given %d rows", m.path, m.Shard, m.Shards, len(m.Units))
			}
			continue
		}
		sum, err := atomicfile.SHA256(m.DataPath())
		if err != nil {
			return nil, fmt.Errorf("shard %d/%d: %w", m.Shard, m.Shards, err)
		}
		if sum != m.PartSHA256 {
			return nil, fmt.Errorf("%s has changed since shard %d/%d wrote it (sha256 %s, manifest %s says %s)", m.DataPath(), m.Shard, m.Shards, short(sum), m.path, short(m.PartSHA256))
		}
	}
	return byShard, nil
}

// short is a hash's first 12 digits.
func short(h string) string { return h[:min(len(h), 12)] }

// same refuses parts of different runs, naming what differs.
func same(a, b *Manifest) error {
	differ := func(what, x, y string) error {
		return fmt.Errorf("%s and %s are parts of different runs: %s %q and %q", a.path, b.path, what, x, y)
	}
	switch {
	case a.Command != b.Command:
		return differ("command", a.Command, b.Command)
	case a.Shards != b.Shards:
		return differ("shard count", fmt.Sprint(a.Shards), fmt.Sprint(b.Shards))
	case a.InputSHA256 != b.InputSHA256:
		return differ("input (sha256)", a.Input+" "+short(a.InputSHA256), b.Input+" "+short(b.InputSHA256))
	case a.Total != b.Total:
		return differ("number of rows", fmt.Sprint(a.Total), fmt.Sprint(b.Total))
	case a.ModelFingerprint != b.ModelFingerprint:
		return differ("model (fingerprint)", a.Model+" "+a.ModelFingerprint, b.Model+" "+b.ModelFingerprint)
	}
	keys := map[string]bool{}
	for k := range a.Settings {
		keys[k] = true
	}
	for k := range b.Settings {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if a.Settings[k] != b.Settings[k] {
			return differ("setting --"+k, a.Settings[k], b.Settings[k])
		}
	}
	return nil
}
