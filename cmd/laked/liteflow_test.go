package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

func writeSnapshot(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	m, err := model.NewMLP([]int{3, 4, 1}, []model.Activation{model.ReLU, model.Identity}, 5)
	if err != nil {
		t.Fatal(err)
	}
	s, err := quant.Quantize(m, [][]float32{{1, 0, -1}, {0.5, 2, 0}, {-1, -1, 1}}, quant.Options{Generation: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "snap.lksn")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestLoadModelFileLiteFlow: lakectl models load ID liteflow FILE serves
// the snapshot, whose image model_fetch hands out is the file; a corrupt
// file is refused.
func TestLoadModelFileLiteFlow(t *testing.T) {
	dir := t.TempDir()
	p, b := writeSnapshot(t, dir)
	m, err := loadModelFile(admin.KindLiteFlow, p, b)
	if err != nil {
		t.Fatal(err)
	}
	kind, img, err := m.(laked.ImageExporter).Image()
	if err != nil || kind != laked.ImageLiteFlow || !bytes.Equal(img, b) {
		t.Fatalf("image kind %q, %d bytes, err %v; want the file's %d bytes", kind, len(img), err, len(b))
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] ^= 1
	if _, err := loadModelFile(admin.KindLiteFlow, filepath.Join(dir, "bad.lksn"), bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt snapshot: %v", err)
	}
}

// TestStartServesLiteFlow: models.liteflow serves the snapshot as model 3
// with its adaptation app; a bad file stops laked naming the key.
func TestStartServesLiteFlow(t *testing.T) {
	dir := t.TempDir()
	p, b := writeSnapshot(t, dir)
	cfg, _, err := loadConfig([]string{"--config", writeConfig(t, ""), "--socket", filepath.Join(dir, "s.sock"), "--device", "",
		"--admin-socket", "", "--metrics-addr", "", "--linnos-weights", "none", "--no-bpf", "--liteflow-snapshot", p}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := start(context.Background(), cfg, zerolog.Nop(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kind, img, _, err := d.srv.ModelImage(modelLiteFlow)
	if err != nil || kind != laked.ImageLiteFlow || !bytes.Equal(img, b) {
		t.Fatalf("model 3 image kind %q, %d bytes, err %v", kind, len(img), err)
	}
	st := d.liteflowStatus()
	if len(st) != 1 || st[0].Name != "aurora" || st[0].Schema != "liteflow.aurora" || len(st[0].Installs) != 1 {
		t.Fatalf("liteflow status %+v", st)
	}

	// loaded by hand (models load --replace 3 liteflow FILE): the app
	// serves it and is pinned until unpinned
	m2, err := kapp.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m2.Generation = 99
	b2, err := snapshot.Encode(m2)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := loadModelFile(admin.KindLiteFlow, "hand.lksn", b2)
	if err != nil {
		t.Fatal(err)
	}
	if handled, err := d.liteflowLoad(7, lm); handled || err != nil {
		t.Fatalf("model 7 is not the app's: handled %v, %v", handled, err)
	}
	mlp, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.liteflowLoad(modelLiteFlow, mlp); err == nil {
		t.Fatal("an MLP replaced the LiteFlow app's model")
	}
	if handled, err := d.liteflowLoad(modelLiteFlow, lm); !handled || err != nil {
		t.Fatalf("load by hand: handled %v, %v", handled, err)
	}
	if _, img, _, err := d.srv.ModelImage(modelLiteFlow); err != nil || !bytes.Equal(img, b2) {
		t.Fatalf("after the load by hand model 3 serves %d bytes (%v), not the loaded snapshot", len(img), err)
	}
	if st := d.liteflowStatus(); !st[0].Pinned || st[0].Installs[len(st[0].Installs)-1].Generation != 99 {
		t.Fatalf("after the load by hand: %+v", st[0])
	}
	if err := d.liteflowUnpin("nope", false); !errors.Is(err, kapp.ErrNoApp) {
		t.Fatalf("unpin of an unknown app: %v", err)
	}
	if err := d.liteflowUnpin("aurora", true); err != nil {
		t.Fatal(err)
	}
	if st := d.liteflowStatus(); st[0].Pinned {
		t.Fatal("still pinned after unpin")
	}
	if err := d.liteflowUnpin("aurora", false); err == nil {
		t.Fatal("unpinned an app that is not pinned")
	}
	d.stop(context.Background())

	os.WriteFile(p, []byte("LKSN garbage"), 0o644)
	if _, err := start(context.Background(), cfg, zerolog.Nop(), nil, nil); err == nil || !strings.Contains(err.Error(), "config key models.liteflow") {
		t.Fatalf("bad snapshot file: %v", err)
	}
}
