package unitfile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.service")
	text := "# c\n; c\n[Unit]\nWants=a\nWants=b\n\n[Service]\nExecStart=/bin/x --y=z\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Unit{"Unit": {"Wants": {"a", "b"}}, "Service": {"ExecStart": {"/bin/x --y=z"}}}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("got %v, want %v", u, want)
	}
	if v, ok := u.Get("Service", "ExecStart"); !ok || v != "/bin/x --y=z" {
		t.Fatalf("Get ExecStart = %q, %v", v, ok)
	}
	if _, ok := u.Get("Unit", "Wants"); ok {
		t.Fatal("Get of a repeated key succeeded")
	}
	for _, bad := range []string{"Wants=a\n", "[Unit]\njunk\n"} {
		if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(p); err == nil || !strings.Contains(err.Error(), "not a key=value") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}
