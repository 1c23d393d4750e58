package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// irl audit refuses incomplete inputs before it writes anything (the
// audit package's tests run it on the toy world's models).
func TestAuditRefusesIncompleteInput(t *testing.T) {
	dir := t.TempDir()
	rows := writeFile(t, filepath.Join(dir, "rows.jsonl"), `{"prompt": "The cat is", "text": " kind."}`+"\n")
	out := filepath.Join(dir, "out")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pos", rows}, "give both"},
		{[]string{"--model", dir}, "give all three"},
		{[]string{"--pos", rows, "--neg", rows}, "--encoder"},
		{nil, "give --model, --base and --prompts, or --pos and --neg"},
	} {
		err := run(t, append(append([]string{"audit"}, c.args...), "--out", out, "--quiet")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("irl audit %v: %v, want an error saying %q", c.args, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("irl audit %v made %s", c.args, out)
		}
	}
}
