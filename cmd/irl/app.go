package main

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"irl/onnx"
)

// prepare applies the rules every command shares, to c and its
// subcommands: required flags say so in --help, and a stray positional
// argument is an error (every input is a named flag, so one is a mistake,
// such as a forgotten flag name).
func prepare(c *cli.Command) {
	for _, f := range c.Flags {
		markRequired(f)
	}
	if act := c.Action; act != nil {
		c.Action = func(ctx *cli.Context) error {
			if ctx.NArg() > 0 {
				return fmt.Errorf("irl %s: unexpected argument %q: every input is given by a flag (see --help)", ctx.Command.FullName(), ctx.Args().First())
			}
			return act(ctx)
		}
	}
	for _, sub := range c.Subcommands {
		prepare(sub)
	}
}

// markRequired appends "(required)" to a required flag's usage.
func markRequired(f cli.Flag) {
	rf, ok := f.(cli.RequiredFlag)
	if !ok || !rf.IsRequired() {
		return
	}
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer {
		return
	}
	u := v.Elem().FieldByName("Usage")
	if u.IsValid() && u.CanSet() && !strings.HasSuffix(u.String(), "(required)") {
		u.SetString(u.String() + " (required)")
	}
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
