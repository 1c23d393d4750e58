package ppo

import (
	"reflect"
	"regexp"
	"strings"
	"sync"
)

// Keys are Config's setting names, as the preset files, the metrics and
// Validate's messages spell them.
func Keys() []string {
	t := reflect.TypeOf(Config{})
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

var keySet = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, k := range Keys() {
		m[k] = true
	}
	return m
})

// word is a run of the characters keys are made of.
var word = regexp.MustCompile(`[a-z0-9_]+`)

// RenameKeys puts a caller's name for each setting named in msg (a
// Validate message): the CLI's flags (--num-rollouts), a configuration
// file's keys (ppo.num_rollouts). Only whole keys are replaced, in one
// pass, and not inside a flag that is already there (the lr of --min-lr).
func RenameKeys(msg string, name func(key string) string) string {
	keys := keySet()
	var b strings.Builder
	last := 0
	for _, m := range word.FindAllStringIndex(msg, -1) {
		k := msg[m[0]:m[1]]
		if !keys[k] || (m[0] > 0 && msg[m[0]-1] == '-') {
			continue
		}
		b.WriteString(msg[last:m[0]])
		b.WriteString(name(k))
		last = m[1]
	}
	b.WriteString(msg[last:])
	return b.String()
}
