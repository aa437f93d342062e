// Package plc is flowd's simulated PLC: an OPC UA server (on gopcua's
// server package) exposing Objects/<Asset>/<Tag> variables of type double,
// float, int32, bool and string whose values change every interval. It
// records every value it writes so tests can compare a client's view with
// the truth. `flowd sim plc` runs it as a process.
package plc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"

	uacommon "github.com/flowd/flowd/common/opcua"
)

// NamespaceURI is the namespace of the PLC's tags (index 2).
const NamespaceURI = "urn:flowd:simplc"

// DefaultMaxNodesPerRead keeps a Read answer well under 64 KiB: gopcua's
// server does not split responses into chunks, and a message larger than the
// client's receive buffer drops the connection.
const DefaultMaxNodesPerRead = 1000

// Config of a simulated PLC.
type Config struct {
	// Listen is the endpoint URL, e.g. opc.tcp://127.0.0.1:4840.
	Listen   string
	Assets   int
	Tags     int
	Interval time.Duration
	// Change is the fraction of tags that change each interval (0–1).
	Change float64
	Seed   uint64
	// AssetPrefix and TagPrefix name the nodes (Asset1.Tag1 …).
	AssetPrefix, TagPrefix string
	// MaxNodesPerRead is advertised in OperationLimits (default 1000).
	MaxNodesPerRead int
	// Policies are the security policies offered (default None); each
	// non-None policy is offered with Sign and SignAndEncrypt. gopcua v0.8.0's
	// server cannot open secure channels with them yet (see README).
	Policies []string
	// Users enables username/password authentication.
	Users map[string]string
	// NoAnonymous refuses anonymous sessions.
	NoAnonymous bool
	// CertFile and KeyFile hold the server certificate (DER or PEM) and key
	// (PEM); when empty a certificate is generated, and kept in CertDir when
	// that is set so restarts present the same identity.
	CertFile, KeyFile string
	CertDir           string
	// Record keeps every written value for History.
	Record bool
	// ServerLog passes the OPC UA server library's own log to Logger.
	ServerLog bool
	Logger    *slog.Logger
}

// Sample is one value the PLC wrote.
type Sample struct {
	TS    time.Time
	Value any
}

type tagType uint8

const (
	tDouble tagType = iota
	tFloat
	tInt32
	tBool
	tString
)

var typeIDs = [...]uint32{id.Double, id.Float, id.Int32, id.Boolean, id.String}

// tagIDBase offsets tag numeric ids from asset folder ids.
const tagIDBase = 1_000_000

type tag struct {
	asset, index int
	name, sid    string // browse name, string id ("Asset1.Tag1")
	typ          tagType
	strKey       string // NodeID.String() forms, as monitored items are keyed
	numKey       string
	strID, numID *ua.NodeID
	val          atomic.Pointer[ua.DataValue]
	state        float64
}

// PLC is a running simulated PLC.
type PLC struct {
	cfg     Config
	log     *slog.Logger
	srv     *server.Server
	ns      *namespace
	cert    []byte
	key     *rsa.PrivateKey
	tags    []*tag
	assets  []*server.Node
	names   []string
	byStr   map[string]int // string id → tag index, or -1-asset for folders
	rng     *mrand.Rand
	writes  atomic.Int64
	dropped atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	histMu  sync.Mutex
	history [][]Sample
}

// New prepares a PLC; Start serves it.
func New(cfg Config) (*PLC, error) {
	if cfg.Listen == "" {
		cfg.Listen = "opc.tcp://127.0.0.1:4840"
	}
	if cfg.Assets <= 0 {
		cfg.Assets = 1
	}
	if cfg.Tags <= 0 {
		cfg.Tags = 10
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Change < 0 || cfg.Change > 1 {
		return nil, fmt.Errorf("change must be between 0 and 1")
	}
	if cfg.AssetPrefix == "" {
		cfg.AssetPrefix = "Asset"
	}
	if cfg.TagPrefix == "" {
		cfg.TagPrefix = "Tag"
	}
	if cfg.MaxNodesPerRead <= 0 {
		cfg.MaxNodesPerRead = DefaultMaxNodesPerRead
	}
	if cfg.Policies == nil {
		cfg.Policies = []string{"None"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Assets >= tagIDBase || cfg.Assets*cfg.Tags > math.MaxInt32-tagIDBase {
		return nil, fmt.Errorf("too many nodes")
	}
	p := &PLC{cfg: cfg, log: cfg.Logger, byStr: map[string]int{}, rng: mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e995))}
	if err := p.loadCert(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PLC) loadCert() error {
	switch {
	case p.cfg.CertFile != "":
		der, err := uacommon.ReadCert(p.cfg.CertFile)
		if err != nil {
			return err
		}
		k, err := readKey(p.cfg.KeyFile)
		if err != nil {
			return err
		}
		p.cert, p.key = der, k
		return nil
	case p.cfg.CertDir != "":
		der, key, err := uacommon.PKI{Dir: p.cfg.CertDir}.Own("urn:flowd:simplc", "flowd simulated PLC")
		p.cert, p.key = der, key
		return err
	}
	der, key, err := uacommon.GenerateCert("urn:flowd:simplc", "flowd simulated PLC", []string{"localhost", "127.0.0.1"}, 365*24*time.Hour)
	p.cert, p.key = der, key
	return err
}

// Certificate is the server's certificate (DER).
func (p *PLC) Certificate() []byte { return p.cert }

// Endpoint is the URL clients connect to.
func (p *PLC) Endpoint() string { return p.cfg.Listen }

// Tags is the number of variables (assets × tags).
func (p *PLC) Tags() int { return p.cfg.Assets * p.cfg.Tags }

// AssetName of asset a (0-based).
func (p *PLC) AssetName(a int) string { return p.cfg.AssetPrefix + strconv.Itoa(a+1) }

// TagName of tag t (0-based) within an asset.
func (p *PLC) TagName(t int) string { return p.cfg.TagPrefix + strconv.Itoa(t+1) }

// NodeID is the string node id of tag t of asset a (0-based), e.g.
// "ns=2;s=Asset1.Tag1".
func (p *PLC) NodeID(a, t int) string {
	return "ns=2;s=" + p.AssetName(a) + "." + p.TagName(t)
}

// AssetNodeID is the node id of asset a's folder.
func (p *PLC) AssetNodeID(a int) string { return "ns=2;s=" + p.AssetName(a) }

// Writes counts the values written since Start (initial values included).
func (p *PLC) Writes() int64 { return p.writes.Load() }

// History returns the values written to a node (string id as from NodeID),
// oldest first; Record must be on.
func (p *PLC) History(nodeID string) []Sample {
	nid, err := ua.ParseNodeID(nodeID)
	if err != nil {
		return nil
	}
	i, ok := p.ns.lookup(nid)
	if !ok || i < 0 {
		return nil
	}
	p.histMu.Lock()
	defer p.histMu.Unlock()
	return append([]Sample(nil), p.history[i]...)
}

// Current returns the node's present value and source time.
func (p *PLC) Current(nodeID string) (any, time.Time, bool) {
	nid, err := ua.ParseNodeID(nodeID)
	if err != nil {
		return nil, time.Time{}, false
	}
	i, ok := p.ns.lookup(nid)
	if !ok || i < 0 {
		return nil, time.Time{}, false
	}
	dv := p.tags[i].val.Load()
	return dv.Value.Value(), dv.SourceTimestamp, true
}

// Start builds the address space, listens and starts changing values. The
// PLC runs until Close or until ctx ends.
func (p *PLC) Start(ctx context.Context) error {
	u, err := url.Parse(p.cfg.Listen)
	if err != nil || u.Scheme != "opc.tcp" {
		return fmt.Errorf("listen: want opc.tcp://host:port, got %q", p.cfg.Listen)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		return fmt.Errorf("listen %q: %w", p.cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("listen %q: bad port", p.cfg.Listen)
	}
	opts := []server.Option{
		server.EndPoint(host, port),
		server.PrivateKey(p.key),
		server.Certificate(p.cert),
		server.ServerName("flowd simulated PLC"),
		server.ManufacturerName("flowd"),
		server.ProductName("flowd sim plc"),
	}
	for _, pol := range p.cfg.Policies {
		uri, err := uacommon.PolicyURI(pol)
		if err != nil {
			return err
		}
		if uacommon.PolicyName(uri) == "None" {
			opts = append(opts, server.EnableSecurity(uri, ua.MessageSecurityModeNone))
			continue
		}
		opts = append(opts, server.EnableSecurity(uri, ua.MessageSecurityModeSign), server.EnableSecurity(uri, ua.MessageSecurityModeSignAndEncrypt))
	}
	if p.cfg.ServerLog {
		opts = append(opts, server.SetLogger(p.log))
	}
	if !p.cfg.NoAnonymous {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeAnonymous))
	}
	if len(p.cfg.Users) > 0 {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeUserName))
	}
	opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeCertificate))
	p.srv = server.New(opts...)
	p.buildAddressSpace()
	// Our ActivateSession checks the user identity; registered before Start,
	// it takes the place of the library's, which accepts any identity.
	p.srv.RegisterHandler(id.ActivateSessionRequest_Encoding_DefaultBinary, p.activateSession)

	p.writeAll(time.Now(), true)
	sctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	if err := p.srv.Start(sctx); err != nil {
		cancel()
		return err
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.run(sctx) }()
	p.log.Info("simulated PLC listening", "endpoint", p.cfg.Listen, "assets", p.cfg.Assets, "tags", p.cfg.Tags,
		"interval", p.cfg.Interval.String(), "change", p.cfg.Change, "max_nodes_per_read", p.cfg.MaxNodesPerRead)
	return nil
}

// Close stops the server and the value generator.
func (p *PLC) Close() error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	err := p.srv.Close()
	p.wg.Wait()
	return err
}

func (p *PLC) buildAddressSpace() {
	server.NewNodeNameSpace(p.srv, NamespaceURI+":server") // ns=1
	p.ns = &namespace{plc: p}
	p.srv.AddNamespace(p.ns) // ns=2
	nsID := p.ns.ID()
	objects := p.srv.Node(server.ObjectsFolder)
	n := p.cfg.Assets * p.cfg.Tags
	p.tags = make([]*tag, 0, n)
	if p.cfg.Record {
		p.history = make([][]Sample, n)
	}
	for a := 0; a < p.cfg.Assets; a++ {
		name := p.AssetName(a)
		p.names = append(p.names, name)
		folder := server.NewNode(ua.NewNumericNodeID(nsID, uint32(a+1)), map[ua.AttributeID]*ua.DataValue{
			ua.AttributeIDNodeClass:     server.DataValueFromValue(uint32(ua.NodeClassObject)),
			ua.AttributeIDBrowseName:    server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: nsID, Name: name}),
			ua.AttributeIDDisplayName:   server.DataValueFromValue(attrs.DisplayName(name, "")),
			ua.AttributeIDDescription:   server.DataValueFromValue(attrs.DisplayName("asset "+name, "")),
			ua.AttributeIDEventNotifier: server.DataValueFromValue(byte(0)),
		}, nil, nil)
		p.assets = append(p.assets, folder)
		p.byStr[name] = -1 - a
		objects.AddRef(folder, server.RefTypeIDOrganizes, true)
		for t := 0; t < p.cfg.Tags; t++ {
			i := len(p.tags)
			tg := &tag{asset: a, index: i, name: p.TagName(t), typ: tagType(t % 5)}
			tg.sid = name + "." + tg.name
			tg.strID = ua.NewStringNodeID(nsID, tg.sid)
			tg.numID = ua.NewNumericNodeID(nsID, uint32(tagIDBase+i))
			tg.strKey, tg.numKey = tg.strID.String(), tg.numID.String()
			p.byStr[tg.sid] = i
			p.tags = append(p.tags, tg)
		}
	}
	mnr := uint32(p.cfg.MaxNodesPerRead)
	p.srv.Namespaces()[0].AddNode(server.NewNode(
		ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
		map[ua.AttributeID]*ua.DataValue{
			ua.AttributeIDBrowseName: server.DataValueFromValue(attrs.BrowseName("MaxNodesPerRead")),
			ua.AttributeIDNodeClass:  server.DataValueFromValue(uint32(ua.NodeClassVariable)),
		},
		nil,
		func() *ua.DataValue { return server.DataValueFromValue(mnr) },
	))
}

var modes = []string{"auto", "manual", "maintenance", "idle", "fault"}

// next computes tag i's next value.
func (p *PLC) next(tg *tag, step int64) any {
	base := float64(20 + 10*tg.asset + tg.index%97)
	switch tg.typ {
	case tDouble:
		return math.Round((base+5*math.Sin(float64(step)*0.1+float64(tg.index))+p.rng.NormFloat64()*0.1)*1000) / 1000
	case tFloat:
		return float32(math.Round((base+p.rng.Float64()*10)*100) / 100)
	case tInt32:
		tg.state += float64(1 + p.rng.IntN(3))
		return int32(tg.state)
	case tBool:
		tg.state = 1 - tg.state
		return tg.state == 1
	default:
		return modes[(int(step)+p.rng.IntN(len(modes)-1)+1)%len(modes)]
	}
}

func (p *PLC) writeAll(now time.Time, all bool) {
	now = now.Truncate(time.Millisecond) // OPC UA DateTime has 100 ns ticks; keep times exact
	step := now.UnixNano() / int64(p.cfg.Interval)
	for _, tg := range p.tags {
		if !all && p.cfg.Change < 1 && p.rng.Float64() >= p.cfg.Change {
			continue
		}
		v := p.next(tg, step)
		dv := &ua.DataValue{
			EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
			Value:           ua.MustVariant(v),
			SourceTimestamp: now,
			ServerTimestamp: now,
		}
		if p.cfg.Record {
			p.histMu.Lock()
			p.history[tg.index] = append(p.history[tg.index], Sample{TS: now, Value: v})
			p.histMu.Unlock()
		}
		tg.val.Store(dv)
		p.writes.Add(1)
		if !all {
			p.notify(tg)
		}
	}
}

// notifyWait bounds how long a value waits for room in a subscription's
// notification queue before the PLC drops it.
const notifyWait = 100 * time.Millisecond

// notify tells the subscriptions watching a tag (by either id form). It does
// what the server's ChangeNotification does, except that it never waits for a
// subscription indefinitely: the library sends on the subscription's queue
// (100 notifications) while holding the monitored item lock, and a
// subscription whose run loop has ended (its client went away mid-publish)
// never empties it, while its cleanup waits for that same lock. A value that
// finds no room within notifyWait is dropped, as a server drops values from
// a full monitored item queue.
func (p *PLC) notify(tg *tag) {
	mis := p.srv.MonitoredItemService
	if mis == nil {
		return
	}
	mis.Mu.Lock()
	defer mis.Mu.Unlock()
	for _, k := range [2]struct {
		key string
		id  *ua.NodeID
	}{{tg.strKey, tg.strID}, {tg.numKey, tg.numID}} {
		for _, item := range mis.Nodes[k.key] {
			if item == nil || item.Sub == nil || item.Req == nil || item.Req.ItemToMonitor == nil || item.Req.RequestedParameters == nil {
				continue
			}
			val := &ua.MonitoredItemNotification{
				ClientHandle: item.Req.RequestedParameters.ClientHandle,
				Value:        p.ns.Attribute(k.id, item.Req.ItemToMonitor.AttributeID),
			}
			select {
			case item.Sub.NotifyChannel <- val:
				continue
			default:
			}
			t := time.NewTimer(notifyWait)
			select {
			case item.Sub.NotifyChannel <- val:
			case <-t.C:
				p.dropped.Add(1)
			}
			t.Stop()
		}
	}
}

// Dropped is how many values found a subscription's queue full (its client
// not publishing) and were not notified.
func (p *PLC) Dropped() int64 { return p.dropped.Load() }

func (p *PLC) run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.writeAll(now, false)
		}
	}
}

// activateSession checks the user identity token against the configured
// users, then activates the session. (The client's session signature is not
// verified: the simulator cannot reach the session's nonce.)
func (p *PLC) activateSession(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.ActivateSessionRequest)
	if !ok {
		return nil, ua.StatusBadRequestTypeInvalid
	}
	if p.srv.Session(req.RequestHeader) == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	var tok any
	if req.UserIdentityToken != nil {
		tok = req.UserIdentityToken.Value
	}
	switch t := tok.(type) {
	case nil, *ua.AnonymousIdentityToken:
		if p.cfg.NoAnonymous {
			p.log.Warn("anonymous session refused")
			return nil, ua.StatusBadIdentityTokenRejected
		}
	case *ua.UserNameIdentityToken:
		pw, err := p.decryptPassword(t)
		want, known := p.cfg.Users[t.UserName]
		if err != nil || !known || pw != want {
			p.log.Warn("login refused", "user", t.UserName)
			return nil, ua.StatusBadUserAccessDenied
		}
	case *ua.X509IdentityToken:
		// Any well-formed certificate is accepted by the simulator.
		if len(t.CertificateData) == 0 {
			return nil, ua.StatusBadIdentityTokenInvalid
		}
	default:
		return nil, ua.StatusBadIdentityTokenInvalid
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, ua.StatusBadInternalError
	}
	return &ua.ActivateSessionResponse{
		ResponseHeader: &ua.ResponseHeader{
			Timestamp:          time.Now(),
			RequestHandle:      req.RequestHeader.RequestHandle,
			ServiceResult:      ua.StatusOK,
			ServiceDiagnostics: &ua.DiagnosticInfo{},
			StringTable:        []string{},
			AdditionalHeader:   ua.NewExtensionObject(nil),
		},
		ServerNonce: nonce,
	}, nil
}

func (p *PLC) decryptPassword(t *ua.UserNameIdentityToken) (string, error) {
	if t.EncryptionAlgorithm == "" {
		return string(t.Password), nil
	}
	for _, pol := range uacommon.Policies[1:] {
		uri, _ := uacommon.PolicyURI(pol)
		enc, err := uapolicyAsymmetric(uri, p.key)
		if err != nil || enc.EncryptionURI() != t.EncryptionAlgorithm {
			continue
		}
		plain, err := enc.Decrypt(t.Password)
		if err != nil {
			return "", err
		}
		if len(plain) < 4 {
			return "", errors.New("short secret")
		}
		n := int(uint32(plain[0]) | uint32(plain[1])<<8 | uint32(plain[2])<<16 | uint32(plain[3])<<24)
		if n < 32 || 4+n > len(plain) {
			return "", errors.New("bad secret length")
		}
		return string(plain[4 : 4+n-32]), nil // password, then the 32-byte server nonce
	}
	return "", fmt.Errorf("unsupported password encryption %q", t.EncryptionAlgorithm)
}

func uapolicyAsymmetric(uri string, key *rsa.PrivateKey) (*uapolicy.EncryptionAlgorithm, error) {
	return uapolicy.Asymmetric(uri, key, &key.PublicKey)
}

func readKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return uacommon.ParseKeyPEM(b)
}
