package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestDeployCommandsExist: every irl command line in deploy/ names a
// command and flags irl has, so a renamed flag cannot leave the launch
// files behind.
func TestDeployCommandsExist(t *testing.T) {
	files := []string{"slurm/shard.sbatch", "slurm/merge.sbatch", "kubernetes/irl-shards.yaml"}
	call := regexp.MustCompile(`exec (?:"\$IRL"|irl) ((?:[^\n\\]|\\\n)*)`)
	app := newApp()
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			seen++
			words := strings.Fields(strings.ReplaceAll(m[1], "\\\n", " "))
			cmds := app.Commands
			var cmd *cli.Command
			for len(words) > 0 && !strings.HasPrefix(words[0], "-") {
				i := slices.IndexFunc(cmds, func(c *cli.Command) bool { return c.Name == words[0] })
				if i < 0 {
					break
				}
				cmd, cmds, words = cmds[i], cmds[i].Subcommands, words[1:]
			}
			if cmd == nil {
				t.Errorf("%s: %q names no irl command", f, m[0])
				continue
			}
			for _, w := range words {
				name, ok := strings.CutPrefix(w, "--")
				if !ok {
					continue
				}
				name, _, _ = strings.Cut(name, "=")
				if !slices.ContainsFunc(cmd.Flags, func(fl cli.Flag) bool { return slices.Contains(fl.Names(), name) }) {
					t.Errorf("%s: irl %s has no flag --%s", f, cmd.Name, name)
				}
			}
		}
	}
	if seen < 4 {
		t.Errorf("found %d irl command lines in deploy/, want the shard and merge lines of each launcher", seen)
	}
}
