// Package sproto holds the Go types of the Sparkplug B payload, generated
// from sparkplug_b.proto (Sparkplug specification v3.0) by protoc-gen-go.
package sproto

// protoc from Debian's protobuf-compiler package, protoc-gen-go from the Go
// module proxy at the version go.mod requires:
//   apt-get install protobuf-compiler
//   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//go:generate protoc --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
