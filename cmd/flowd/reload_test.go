package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		h, err := configHash([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	write("a.hcl", "pipeline \"a\" {}\n")
	h1 := hash()
	if hash() != h1 {
		t.Fatal("hash of unchanged files changed")
	}
	write("notes.txt", "not configuration")
	if hash() != h1 {
		t.Fatal("a non-.hcl file changed the hash")
	}
	write("a.hcl", "pipeline \"b\" {}\n")
	h2 := hash()
	if h2 == h1 {
		t.Fatal("changed contents, same hash")
	}
	write("b.hcl", "")
	if hash() == h2 {
		t.Fatal("an added file did not change the hash")
	}
	// Content moving between files is a change too.
	write("a.hcl", "")
	write("b.hcl", "pipeline \"b\" {}\n")
	if hash() == h2 {
		t.Fatal("contents moved from a.hcl to b.hcl, same hash")
	}
	if _, err := configHash([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("no error for a missing path")
	}
}
