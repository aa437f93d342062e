package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCodecDocsInSync fails when docs/codecs differs from what the codec
// specs generate: run `make docs` (flowd codecs --markdown docs/codecs).
func TestCodecDocsInSync(t *testing.T) {
	want := t.TempDir()
	if err := writeCodecDocs(registry().Codecs, want); err != nil {
		t.Fatal(err)
	}
	have := filepath.Join("..", "..", "docs", "codecs")
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.md"))
	haveFiles, _ := filepath.Glob(filepath.Join(have, "*.md"))
	if len(wantFiles) != len(haveFiles) {
		t.Errorf("docs/codecs has %d files, the codecs make %d: run make docs", len(haveFiles), len(wantFiles))
	}
	for _, w := range wantFiles {
		gen, _ := os.ReadFile(w)
		cur, err := os.ReadFile(filepath.Join(have, filepath.Base(w)))
		if err != nil || !bytes.Equal(gen, cur) {
			t.Errorf("docs/codecs/%s is stale or missing: run make docs", filepath.Base(w))
		}
	}
}

func TestCodecsCommand(t *testing.T) {
	code, out, _ := runCLI("codecs")
	for _, name := range []string{"json", "json_batch", "asset_json", "raw"} {
		if code != exitOK || !strings.Contains(out, name+" ") {
			t.Errorf("flowd codecs (exit %d) does not list %s:\n%s", code, name, out)
		}
	}
	if code, out, _ := runCLI("codecs", "json_batch"); code != exitOK || !strings.Contains(out, "max_message_bytes") {
		t.Errorf("flowd codecs json_batch (exit %d):\n%s", code, out)
	}
	if code, _, errs := runCLI("codecs", "jsn"); code != exitInvalid || !strings.Contains(errs, `did you mean "json"`) {
		t.Errorf("unknown codec: exit %d, %s", code, errs)
	}
}
