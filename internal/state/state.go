// Package state keeps what apply installed: the policy it applied and the
// ruleset script it loaded, so that plan can show firewall changes and
// status can tell whether the firewall still matches the policy.
package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultDir is where the state lives unless ZONEWARDEN_STATE_DIR says
// otherwise.
const DefaultDir = "/var/lib/zonewarden"

// Dir returns the state directory.
func Dir() string {
	if d := os.Getenv("ZONEWARDEN_STATE_DIR"); d != "" {
		return d
	}
	return DefaultDir
}

// Applied is what the last apply installed.
type Applied struct {
	PolicyPath string    // the policy file as given to apply
	Policy     []byte    // its contents then
	Script     string    // the nft script loaded
	Time       time.Time // when
}

const (
	policyFile = "applied-policy.yaml"
	sourceFile = "applied-policy.path"
	scriptFile = "applied-ruleset.nft"
)

// Save records an apply, replacing the previous record.
func Save(a Applied) error {
	dir := Dir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keeping the applied state in %s: %w", dir, err)
	}
	for name, data := range map[string][]byte{policyFile: a.Policy, sourceFile: []byte(a.PolicyPath), scriptFile: []byte(a.Script)} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return fmt.Errorf("keeping the applied state: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("keeping the applied state: %w", err)
		}
	}
	return nil
}

// Load returns the last apply, or nil when there is none.
func Load() (*Applied, error) {
	dir := Dir()
	script, err := os.ReadFile(filepath.Join(dir, scriptFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := &Applied{Script: string(script)}
	if st, err := os.Stat(filepath.Join(dir, scriptFile)); err == nil {
		a.Time = st.ModTime()
	}
	a.Policy, _ = os.ReadFile(filepath.Join(dir, policyFile))
	path, _ := os.ReadFile(filepath.Join(dir, sourceFile))
	a.PolicyPath = string(path)
	return a, nil
}

// Clear forgets the last apply (after reset).
func Clear() error {
	var errs []error
	for _, name := range []string{policyFile, sourceFile, scriptFile} {
		if err := os.Remove(filepath.Join(Dir(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
