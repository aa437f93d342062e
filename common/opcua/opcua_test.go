package opcua

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/gopcua/opcua/ua"
)

func TestPKI(t *testing.T) {
	p := PKI{Dir: t.TempDir()}
	der, key, err := p.Own("urn:flowd:test", "flowd")
	if err != nil || key == nil {
		t.Fatal(err)
	}
	der2, _, err := p.Own("urn:flowd:test", "flowd")
	if err != nil || string(der2) != string(der) {
		t.Fatalf("second Own must load the same certificate (err %v)", err)
	}
	peer, _, _ := GenerateCert("urn:peer", "peer", []string{"127.0.0.1"}, time.Hour)
	if p.IsTrusted(peer) {
		t.Fatal("an unknown certificate is trusted")
	}
	rej, err := p.Reject(peer)
	if err != nil || filepath.Dir(rej) != filepath.Join(p.Dir, "rejected") {
		t.Fatalf("reject: %s %v", rej, err)
	}
	if err := os.Rename(rej, filepath.Join(p.TrustedDir(), filepath.Base(rej))); err != nil {
		t.Fatal(err)
	}
	if !p.IsTrusted(peer) {
		t.Fatal("a certificate moved to trusted/ is not trusted")
	}
	if NormalizeThumbprint("AB:CD ef") != "abcdef" {
		t.Fatal("thumbprint normalization")
	}
}

func TestPolicyNames(t *testing.T) {
	u, err := PolicyURI("basic256sha256")
	if err != nil || u != "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256" || PolicyName(u) != "Basic256Sha256" {
		t.Fatalf("%s %v", u, err)
	}
	if _, err := PolicyURI("Basic512"); err == nil {
		t.Fatal("unknown policy accepted")
	}
	if m, err := Mode("SignAndEncrypt"); err != nil || m != ua.MessageSecurityModeSignAndEncrypt || ModeName(m) != "SignAndEncrypt" {
		t.Fatal("mode")
	}
}

func TestBrowsePath(t *testing.T) {
	names, anyNS, err := ParseBrowsePath("/2:Plant/Line1")
	if err != nil || len(names) != 2 || names[0].NamespaceIndex != 2 || names[0].Name != "Plant" || anyNS[0] || !anyNS[1] {
		t.Fatalf("%v %v %v", names, anyNS, err)
	}
	if _, _, err := ParseBrowsePath("/a//b"); err == nil {
		t.Fatal("empty element accepted")
	}
	if !IsBrowsePath("/x") || IsBrowsePath("ns=2;s=x") {
		t.Fatal("IsBrowsePath")
	}
}

func TestScalar(t *testing.T) {
	for _, c := range []struct {
		in   any
		want engine.Value
	}{
		{float32(0.1), engine.Float(0.1)},
		{uint64(1) << 63, engine.Uint(1 << 63)},
		{uint64(math.MaxUint64), engine.Uint(math.MaxUint64)},
		{uint64(7), engine.Int(7)},
		{[]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f}, engine.String("3q2+7wB/")},
		{int16(-3), engine.Int(-3)},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), engine.String("2026-01-02T03:04:05Z")},
		{ua.NewLocalizedText("x"), engine.String("x")},
	} {
		got, ok := Scalar(c.in)
		if !ok || !got.Equal(c.want) || got.Kind() != c.want.Kind() {
			t.Errorf("Scalar(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if _, ok := Scalar([]int32{1}); ok {
		t.Error("an array is not a scalar")
	}
	if v, ok := Array([]int32{1, 2}); !ok || len(v) != 2 || ArrayJSON(v).String() != "[1,2]" {
		t.Errorf("Array: %v", v)
	}
	if !DataValueOverflow(ua.StatusCode(0x00000480)) || DataValueOverflow(ua.StatusOK) {
		t.Error("overflow bit")
	}
}
