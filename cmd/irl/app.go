package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"irl/checkpoint"
	"irl/onnx"
)

// prepare applies the rules every command shares, to c and its
// subcommands: required flags say so in --help; a missing one is the first
// and only thing said, with no page of help before it; and a stray
// positional argument is an error (every input is a named flag, so one is a
// mistake, such as a forgotten flag name), but for a command whose
// ArgsUsage names its arguments (irl merge's parts).
func prepare(c *cli.Command) {
	var required []string
	for _, f := range c.Flags {
		if takeRequired(f) {
			required = append(required, f.Names()[0])
		}
	}
	if act := c.Action; act != nil {
		c.Action = func(ctx *cli.Context) error {
			name := strings.TrimPrefix(ctx.Command.HelpName, "irl ") // main prefixes "irl: "
			var missing []string
			for _, name := range required {
				if !ctx.IsSet(name) {
					missing = append(missing, "--"+name)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("%s: missing %s (required; see --help)", name, strings.Join(missing, ", "))
			}
			if ctx.NArg() > 0 && c.ArgsUsage == "" {
				return fmt.Errorf("%s: unexpected argument %q: every input is given by a flag (see --help)", name, ctx.Args().First())
			}
			if err := readPaths(ctx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return inFlags(ctx, act(ctx))
		}
	}
	for _, sub := range c.Subcommands {
		prepare(sub)
	}
}

// pathFlags name files and folders. Their values are cleaned once, here, so
// that "plots/" and "plots" are one folder to every command (a trailing
// slash made a temporary name inside the folder it was to replace).
var pathFlags = []string{"out", "plots", "input", "prompts", "eval-prompts", "config", "tokenizer", "scorer-tokenizer",
	"head", "pos", "neg", "gt-pos", "gt-neg", "eval-pos", "eval-neg", "scores-out", "ort-lib", "expert"}

// modelFlags name a model, which may also be given as a training run's
// folder or its last-checkpoint file (checkpoint.ModelDir).
var modelFlags = []string{"model", "base-model", "reward-model", "base", "encoder"}

// readPaths cleans the path flags and resolves the model flags of a
// command, saying on stderr which model a run folder stood for.
func readPaths(ctx *cli.Context) error {
	for _, f := range ctx.Command.Flags {
		sf, ok := f.(*cli.StringFlag)
		if !ok || !ctx.IsSet(sf.Name) {
			continue
		}
		v := ctx.String(sf.Name)
		if v == "" || v == "-" {
			continue
		}
		switch {
		case slices.Contains(pathFlags, sf.Name):
			if err := ctx.Set(sf.Name, filepath.Clean(v)); err != nil {
				return err
			}
		case slices.Contains(modelFlags, sf.Name):
			dir, how, err := checkpoint.ModelDir(filepath.Clean(v))
			if err != nil {
				return fmt.Errorf("--%s %w", sf.Name, err)
			}
			if how != "" {
				fmt.Fprintf(ctx.App.ErrWriter, "--%s %s: using %s, %s\n", sf.Name, v, dir, how)
			}
			if err := ctx.Set(sf.Name, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// inFlags says err in the command's words: the libraries name their
// settings by key (max_length, reward_model, skip_bad), which are this
// command's flags (--max-length …) wherever it has one of that name. Keys
// of one word are the same word as prose and stay as they are.
func inFlags(ctx *cli.Context, err error) error {
	if err == nil {
		return nil
	}
	byKey := map[string]string{}
	for _, f := range ctx.Command.Flags {
		for _, n := range f.Names() {
			if strings.Contains(n, "-") {
				byKey[strings.ReplaceAll(n, "-", "_")] = "--" + n
			}
		}
	}
	msg := err.Error()
	var b strings.Builder
	last := 0
	for _, m := range keyWord.FindAllStringIndex(msg, -1) {
		flag, ok := byKey[msg[m[0]:m[1]]]
		if !ok {
			continue
		}
		b.WriteString(msg[last:m[0]])
		b.WriteString(flag)
		last = m[1]
	}
	if last == 0 {
		return err
	}
	b.WriteString(msg[last:])
	return &flagError{msg: b.String(), err: err}
}

// keyWord is a run of the characters settings' keys are made of.
var keyWord = regexp.MustCompile(`[A-Za-z0-9_]+`)

// flagError is an error reworded in flags, still wrapping the original.
type flagError struct {
	msg string
	err error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }

var (
	requiredMu sync.Mutex
	// requiredFlags remembers the flags takeRequired took over: flags are
	// shared between commands and apps, and the first take clears their
	// Required field.
	requiredFlags = map[cli.Flag]bool{}
)

// takeRequired reports whether f is required, appending "(required)" to its
// usage and taking the check over from the cli package, which prints the
// whole help page before its error.
func takeRequired(f cli.Flag) bool {
	requiredMu.Lock()
	defer requiredMu.Unlock()
	if requiredFlags[f] {
		return true
	}
	rf, ok := f.(cli.RequiredFlag)
	if !ok || !rf.IsRequired() {
		return false
	}
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer {
		return false
	}
	u, r := v.Elem().FieldByName("Usage"), v.Elem().FieldByName("Required")
	if !u.CanSet() || !r.CanSet() {
		return false
	}
	if !strings.HasSuffix(u.String(), "(required)") {
		u.SetString(u.String() + " (required)")
	}
	r.SetBool(false)
	requiredFlags[f] = true
	return true
}

// commit is set at link time by make build (-X main.commit=…).
var commit string

// version is the module's version and the commit it was built from.
func version() string {
	v, commit, dirty := "devel", commit, ""
	if commit == "" {
		commit = "unknown"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+changes"
				}
			}
		}
	}
	return fmt.Sprintf("%s (commit %s%s)", v, commit, dirty)
}

// printVersion prints irl's version and the ONNX Runtime it finds.
func printVersion(c *cli.Context) {
	fmt.Fprintf(c.App.Writer, "irl %s\n", c.App.Version)
	if err := onnx.Init(""); err != nil {
		fmt.Fprintf(c.App.Writer, "ONNX Runtime: not found (%v)\n", err)
		return
	}
	fmt.Fprintf(c.App.Writer, "ONNX Runtime %s (%s)\n", onnx.Version(), onnx.Library())
}
