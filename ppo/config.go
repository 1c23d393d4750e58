package ppo

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

//go:embed presets/*.yaml
var presets embed.FS

// Presets lists the preset names LoadConfig knows (pythia-70m, pythia-410m).
func Presets() []string {
	ents, _ := presets.ReadDir("presets")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// LoadConfig reads a preset by name, or a YAML (.yaml, .yml) or TOML (.toml)
// file, over Defaults(). Keys are Config's JSON names; an unknown key is an
// error naming it.
func LoadConfig(spec string) (Config, error) {
	name := spec
	var data []byte
	var err error
	if b, e := presets.ReadFile("presets/" + spec + ".yaml"); e == nil && !strings.ContainsAny(spec, `/\.`) {
		data, name = b, "preset "+spec
	} else if data, err = os.ReadFile(spec); err != nil {
		return Config{}, fmt.Errorf("ppo: %s is not a preset (%s) nor a readable file: %w", spec, strings.Join(Presets(), ", "), err)
	}
	var m map[string]any
	switch strings.ToLower(filepath.Ext(spec)) {
	case ".toml":
		if _, err := toml.Decode(string(data), &m); err != nil {
			return Config{}, fmt.Errorf("ppo: %s: %w", name, err)
		}
	default:
		if err := yaml.Unmarshal(data, &m); err != nil {
			return Config{}, fmt.Errorf("ppo: %s: %w", name, err)
		}
	}
	// Through JSON: the keys are Config's JSON names, and unknown ones are
	// refused rather than ignored.
	j, err := json.Marshal(m)
	if err != nil {
		return Config{}, fmt.Errorf("ppo: %s: %w", name, err)
	}
	c := Defaults()
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("ppo: %s: %v", name, strings.TrimPrefix(err.Error(), "json: "))
	}
	return c, c.Validate()
}
