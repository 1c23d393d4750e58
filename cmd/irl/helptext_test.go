package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every --flag that a command's usage line or description names is one the
// command (or the app) defines, or, where the text just before it names
// another command ("irl reward eval --gt-pos", "eval's --gt-pos"), one that
// some command defines: help never advertises a flag that is gone.
func TestHelpNamesOnlyDefinedFlags(t *testing.T) {
	app := newApp()
	global := map[string]bool{"help": true, "version": true}
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			global[n] = true
		}
	}
	anywhere := map[string]bool{}
	var collect func(cmds []*cli.Command)
	collect = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					anywhere[n] = true
				}
			}
			collect(c.Subcommands)
		}
	}
	collect(app.Commands)
	other := regexp.MustCompile(`irl [a-z]|'s\s*$|'s --`)
	mention := regexp.MustCompile(`(?:^|[\s\[(,|'"\x60])--([a-z][a-z0-9-]*)`)
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := strings.TrimSpace(path + " " + c.Name)
			defined := map[string]bool{}
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					defined[n] = true
				}
			}
			text := c.UsageText + "\n" + c.Description
			for _, m := range mention.FindAllStringSubmatchIndex(text, -1) {
				flag := text[m[2]:m[3]]
				if defined[flag] || global[flag] {
					continue
				}
				// A parent's help may name its subcommands' flags.
				if len(c.Subcommands) > 0 && subDefines(c.Subcommands, flag) {
					continue
				}
				if before := text[max(0, m[2]-200):m[2]]; anywhere[flag] && other.MatchString(before) {
					continue
				}
				t.Errorf("irl %s: help names --%s, which the command does not define", name, flag)
			}
			walk(name, c.Subcommands)
		}
	}
	walk("", app.Commands)
}

func subDefines(cmds []*cli.Command, flag string) bool {
	for _, c := range cmds {
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if n == flag {
					return true
				}
			}
		}
		if subDefines(c.Subcommands, flag) {
			return true
		}
	}
	return false
}

// The names the reward subcommands used before each meaning got its own
// still parse, as the README promises.
func TestOldRewardFlagNamesAreAliases(t *testing.T) {
	want := map[string]map[string]string{
		"train":      {"epsilon": "tolerance", "p": "slope"},
		"probe":      {"max-iter": "lbfgs-iterations"},
		"apprentice": {"epsilon": "margin-epsilon", "max-iter": "max-oracle-calls"},
	}
	var reward *cli.Command
	for _, c := range newApp().Commands {
		if c.Name == "reward" {
			reward = c
		}
	}
	if reward == nil {
		t.Fatal("no reward command")
	}
	for _, c := range reward.Subcommands {
		for old, cur := range want[c.Name] {
			found := false
			for _, f := range c.Flags {
				names := f.Names()
				if names[0] == cur {
					for _, n := range names[1:] {
						found = found || n == old
					}
				}
			}
			if !found {
				t.Errorf("reward %s: --%s is not an alias of --%s", c.Name, old, cur)
			}
		}
	}
}
