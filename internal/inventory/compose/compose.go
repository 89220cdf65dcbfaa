// Package compose reads compose files into an inventory.Snapshot: the
// networks and containers that "docker compose up" would create, before any
// of them exists.
//
// It owns the translation from the compose model (as github.com/compose-spec/
// compose-go/v2 loads it: files merged in order, .env and the environment
// interpolated, profiles applied, unused resources pruned) to zonewarden's
// host model, and the file:line:col errors for bad compose files.
//
// It must not talk to Docker, build images, resolve env_file contents or
// guess addresses Docker would assign: what compose leaves to the daemon
// stays unset in the snapshot (IPs without ipv4_address, host ports picked at
// start). It returns plain inventory types; compose-go's types never leave
// this package.
package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// Options tune how the compose files are read. The zero value reads them as
// a plain "docker compose -f FILE ... up" in the files' directory would.
type Options struct {
	// ProjectName overrides the project name. When empty it is derived as
	// docker compose does: COMPOSE_PROJECT_NAME, else the top-level name:
	// of the files, else the name of the first file's directory.
	ProjectName string
	// Profiles to enable, as --profile does. When empty, COMPOSE_PROFILES
	// decides.
	Profiles []string
	// Env is the environment used for interpolation, as "KEY=value"
	// entries. Like exec.Cmd.Env, nil means the process environment; a
	// non-nil slice replaces it. The .env file next to the first compose
	// file is read in both cases, and loses to Env as it does in compose.
	Env []string
	// Stack reads the files as docker stack deploy does: a Swarm stack
	// named as the project, with overlays, services and deploy: (see
	// stack).
	Stack bool
}

// Load reads the compose files (merged in order, as docker compose -f a -f b
// does) and returns the host they describe: every network compose would
// create or join, and every container (one per replica) in state "defined".
//
// Problems in the files come back as *inventory.DecodeError naming the file,
// with line and column where the position is known.
func Load(ctx context.Context, files []string, opts Options) (snap *inventory.Snapshot, err error) {
	if len(files) == 0 {
		return nil, errors.New("no compose file given: name at least one")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// compose-go asserts types in places a schema check normally guards;
	// a file crafted to slip past it must not crash the caller.
	defer func() {
		if r := recover(); r != nil {
			snap = nil
			err = &inventory.DecodeError{
				File: strings.Join(files, ","),
				Msg: fmt.Sprintf("compose-go failed while reading these files (%s); check them with \"docker compose config\"",
					strings.Join(strings.Fields(fmt.Sprint(r)), " ")),
			}
		}
	}()

	inputs, err := readFiles(files)
	if err != nil {
		return nil, err
	}
	env, err := environment(inputs, opts.Env)
	if err != nil {
		return nil, err
	}
	l := projectLoader{inputs: inputs, env: env, opts: opts, name: opts.ProjectName}
	if l.name == "" {
		l.name = env[consts.ComposeProjectName]
	}
	if l.name != "" && loader.NormalizeProjectName(l.name) != l.name {
		err := fmt.Errorf("%w (for example %q)", loader.InvalidProjectNameErr(l.name), loader.NormalizeProjectName(l.name))
		if opts.ProjectName == "" {
			err = fmt.Errorf("%s: %w", consts.ComposeProjectName, err)
		}
		return nil, err
	}

	project, err := l.load(ctx, len(inputs))
	if err != nil {
		return nil, l.explain(ctx, err)
	}
	snap, err = convert(project)
	if err != nil {
		return nil, l.explainModel(err)
	}
	if opts.Stack {
		stack(project, snap)
		inventory.Sort(snap)
	}
	snap.Source = inventory.Source{Kind: "compose", Detail: strings.Join(files, ",")}
	if err := snap.Validate(); err != nil {
		return nil, &inventory.DecodeError{File: strings.Join(files, ","), Msg: err.Error()}
	}
	return snap, nil
}

// input is one compose file: the name as the caller gave it, its absolute
// path (the name compose-go uses in its messages) and its content.
type input struct {
	name    string
	abs     string
	content []byte
}

// readFiles reads every file up front, so that a missing or unreadable one
// is reported by the name the caller used.
func readFiles(files []string) ([]input, error) {
	inputs := make([]input, 0, len(files))
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, &inventory.DecodeError{File: f, Msg: err.Error()}
		}
		content, err := os.ReadFile(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, &inventory.DecodeError{File: f, Msg: "no such compose file (check the path, relative to " + workingDirHint() + ")"}
		case err != nil:
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, &inventory.DecodeError{File: f, Msg: "cannot read compose file: " + err.Error()}
		}
		inputs = append(inputs, input{name: f, abs: abs, content: content})
	}
	return inputs, nil
}

func workingDirHint() string {
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "the current directory"
}

// environment builds the interpolation environment as docker compose does:
// the process environment (or env) first, then the .env file in the
// project directory for the variables still unset.
func environment(inputs []input, env []string) (types.Mapping, error) {
	base := cli.WithOsEnv
	if env != nil {
		base = cli.WithEnv(env)
	}
	po, err := cli.NewProjectOptions([]string{inputs[0].abs}, base, cli.WithEnvFiles(), cli.WithDotEnv)
	if err != nil {
		return nil, dotEnvError(filepath.Join(filepath.Dir(inputs[0].name), ".env"), err)
	}
	return po.Environment, nil
}

// dotEnvError places an error of the .env file ("failed to read
// /abs/.env: line 4: unterminated quoted value") in that file.
func dotEnvError(name string, err error) error {
	de := &inventory.DecodeError{File: name, Msg: strings.Join(strings.Fields(err.Error()), " ")}
	if abs, aerr := filepath.Abs(name); aerr == nil {
		de.Msg = strings.TrimPrefix(de.Msg, "failed to read "+abs+": ")
	}
	if m := yamlLinePrefix.FindStringSubmatch(de.Msg); m != nil {
		de.Line, _ = strconv.Atoi(m[1])
		content, _ := os.ReadFile(name)
		de.Col = firstColumn(content, de.Line)
		de.Msg = de.Msg[len(m[0]):]
	}
	return de
}

// projectLoader runs compose-go's loader on the first n files.
type projectLoader struct {
	inputs []input
	env    types.Mapping
	opts   Options
	// name is the project name given or set by COMPOSE_PROJECT_NAME;
	// "" lets the files or the directory name the project.
	name string
}

func (l *projectLoader) load(ctx context.Context, n int) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(l.inputs[0].abs),
		Environment: l.env.Clone(),
	}
	for _, in := range l.inputs[:n] {
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: in.abs, Content: in.content})
	}
	return loader.LoadWithContext(ctx, details,
		l.projectName(details.WorkingDir),
		loader.WithProfiles(l.profiles()),
		// docker compose up creates only the networks that services use
		// (unless --all-resources).
		loader.WithoutUnnecessaryResources,
		// env_file content is the containers' business, not the network's:
		// a missing secrets file must not stop an audit.
		func(o *loader.Options) { o.SkipResolveEnvironment = true },
	)
}

// projectName applies docker compose's precedence: the option, then
// COMPOSE_PROJECT_NAME, then (inside the loader) the files' name:, then the
// project directory's name.
func (l *projectLoader) projectName(workingDir string) func(*loader.Options) {
	return func(o *loader.Options) {
		if l.name != "" {
			o.SetProjectName(l.name, true)
			return
		}
		o.SetProjectName(loader.NormalizeProjectName(filepath.Base(workingDir)), false)
	}
}

func (l *projectLoader) profiles() []string {
	if len(l.opts.Profiles) > 0 {
		return l.opts.Profiles
	}
	var profiles []string
	for _, p := range strings.Split(l.env[consts.ComposeProfiles], ",") {
		if p = strings.TrimSpace(p); p != "" {
			profiles = append(profiles, p)
		}
	}
	return profiles
}
