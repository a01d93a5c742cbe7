package unitfile

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Unit is a parsed unit file: section -> key -> values, in file order.
type Unit map[string]map[string][]string

// Get returns the single value of section's key, or "" and false when it
// is missing or repeated.
func (u Unit) Get(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// Parse reads the unit file at path.
func Parse(path string) (Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := Unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
