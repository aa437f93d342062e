package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

const fixture = `{"definitions": {
  "io.k8s.api.apps.v1.Thing": {
    "description": "dropped",
    "type": "object",
    "required": ["spec"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"type": "string"},
      "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.ThingSpec"}
    },
    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Thing"}]
  },
  "io.k8s.api.apps.v1.ThingSpec": {
    "type": "object",
    "properties": {
      "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "self": {"$ref": "#/definitions/io.k8s.api.apps.v1.ThingSpec"}
    }
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.core.v1.Pod": {"type": "object", "properties": {}, "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}]}
}}`

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(in, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := generate(in, "1.33.13", dir)
	if err != nil || n != 2 {
		t.Fatalf("generate: %d files, %v", n, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "v1.33.13-standalone-strict", "thing-apps-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["description"]; ok {
		t.Error("description kept")
	}
	if got["additionalProperties"] != false {
		t.Error("top-level object not closed")
	}
	spec := got["properties"].(map[string]any)["spec"].(map[string]any)
	props := spec["properties"].(map[string]any)
	if _, ok := props["port"].(map[string]any)["oneOf"]; !ok {
		t.Errorf("int-or-string not a oneOf: %v", props["port"])
	}
	if _, ok := props["memory"].(map[string]any)["oneOf"]; !ok {
		t.Errorf("quantity not a oneOf: %v", props["memory"])
	}
	if props["labels"].(map[string]any)["additionalProperties"].(map[string]any)["type"] != "string" {
		t.Errorf("map of strings changed: %v", props["labels"])
	}
	if self := props["self"].(map[string]any); len(self) != 0 {
		t.Errorf("recursive reference not cut: %v", self)
	}
	if _, err := os.Stat(filepath.Join(dir, "v1.33.13-standalone-strict", "pod-v1.json")); err != nil {
		t.Error(err)
	}
}

func TestFileName(t *testing.T) {
	for _, c := range []struct {
		k    gvk
		want string
	}{
		{gvk{"", "v1", "ConfigMap"}, "configmap-v1.json"},
		{gvk{"apps", "v1", "StatefulSet"}, "statefulset-apps-v1.json"},
		{gvk{"policy", "v1", "PodDisruptionBudget"}, "poddisruptionbudget-policy-v1.json"},
		{gvk{"networking.k8s.io", "v1", "NetworkPolicy"}, "networkpolicy-networking-v1.json"},
	} {
		if got := FileName(c.k); got != c.want {
			t.Errorf("%v: %s, want %s", c.k, got, c.want)
		}
	}
}
