//go:build linux

package admin

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lakeos/lake/policy"
)

// TestPolicyVerifierRejection loads a policy the kernel verifier rejects
// through the API: 422, the verifier's log lines, the old policy kept.
// It needs BPF (root) and clang, as CI has.
func TestPolicyVerifierRejection(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not found: needed to build a test policy object")
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if !eng.Status().Kernel {
		t.Skipf("BPF policies unavailable here (needs root/CAP_BPF): %s", eng.Status().Note)
	}
	inc, err := filepath.Abs("../../policy/bpf")
	if err != nil {
		t.Fatal(err)
	}
	abi, err := filepath.Abs("../../lakelib/include")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	// Reads far past the end of the context: the verifier refuses it.
	if err := os.WriteFile(src, []byte(`#include "policy_common.h"
char LICENSE[] SEC("license") = "GPL";
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return ((__u64 *)c)[20] & 1; }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "p.o")
	if out, err := exec.Command(clang, "-O2", "-g", "-target", "bpf", "-I", inc, "-I", abi, "-c", src, "-o", obj).CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	e := newEnv(t, func(d *Deps) { d.Policy = eng })
	_, err = e.c.LoadPolicy(t.Context(), LoadPolicyRequest{File: obj})
	ae := wantAPIError(t, err, http.StatusUnprocessableEntity, "rejected, keeping default")
	if len(ae.VerifierLog) == 0 {
		t.Fatalf("no verifier log in %+v", ae)
	}
	if eng.Active() != "default" || !eng.Status().Kernel {
		t.Fatalf("active policy changed: %+v", eng.Status())
	}
	// A good one (the committed costaware object) loads.
	good, err := filepath.Abs("../../policy/costawarepolicy_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.c.LoadPolicy(t.Context(), LoadPolicyRequest{File: good})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Active != "file:"+good || !p.Status.Kernel {
		t.Fatalf("after loading %s: %+v", good, p.Status)
	}
}
