package opcua

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
)

// Config is the opcua source's configuration.
type Config struct {
	Endpoint string        `hcl:"endpoint,required" scheme:"opc.tcp" doc:"server endpoint URL, opc.tcp://host:port[/path]"`
	Mode     string        `hcl:"mode" default:"poll" enum:"poll|subscribe" doc:"poll: the Read service every interval; subscribe: monitored items reported by the server"`
	Interval time.Duration `hcl:"interval" default:"1s" doc:"poll: time between reads; subscribe: publishing interval"`
	Asset    string        `hcl:"asset" doc:"asset of the points from nodes and node blocks (browse takes the parent object's name unless browse.asset_from = \"source\")"`

	Nodes  map[string]string `hcl:"nodes" doc:"tag name → node id, e.g. { temperature = \"ns=2;s=Line1.Temperature\" }"`
	Node   []NodeConfig      `hcl:"node,block" doc:"one node with per-node settings; the label is the tag name"`
	Browse *BrowseConfig     `hcl:"browse,block" doc:"discover the variables below a folder"`

	SamplingInterval time.Duration `hcl:"sampling_interval" default:"0s" doc:"subscribe: how often the server samples each node (0: the publishing interval)"`
	QueueSize        int           `hcl:"queue_size" default:"10" doc:"subscribe: values the server queues per node between publishes (at most 10,000)"`
	DiscardOldest    bool          `hcl:"discard_oldest" default:"true" doc:"subscribe: when a node's queue is full, drop the oldest value (false: the newest)"`
	Deadband         float64       `hcl:"deadband" default:"0" doc:"report a numeric value only when it moved more than this from the last reported one"`
	DeadbandType     string        `hcl:"deadband_type" default:"none" enum:"none|absolute|percent" doc:"absolute is asked of the server (DataChangeFilter) and also checked client-side, so servers that refuse or ignore filters still behave; percent is of the last reported value, client-side"`

	Timestamp       string `hcl:"timestamp" default:"source" enum:"source|server|receive" doc:"point ts: the source timestamp (falling back to the server's, then receive time), the server timestamp, or receive time"`
	Arrays          string `hcl:"arrays" default:"explode" enum:"explode|json" doc:"array values: one point per element tagged tag[i], or one JSON string"`
	MaxNodesPerRead int    `hcl:"max_nodes_per_read" default:"0" doc:"largest Read request; 0 uses the server's OperationLimits/MaxNodesPerRead (1000 when it states none); at most 100,000"`
	MaxItemsPerSub  int    `hcl:"max_items_per_subscription" default:"1000" doc:"subscribe: monitored items per subscription (keeps each publish answer small; at most 100,000)"`

	KeepAliveCount  uint32        `hcl:"keepalive_count" default:"5" doc:"subscribe: publishing intervals without data after which the server sends a keep-alive; after this long with nothing received the source probes the server (see watchdog_timeout)"`
	LifetimeCount   uint32        `hcl:"lifetime_count" default:"0" doc:"subscribe: publishing intervals without publish requests after which the server deletes the subscription (0: a minute's worth, and at least 3 × keepalive_count, the least the specification allows); the watchdog, not the lifetime, detects a hung server"`
	WatchdogTimeout time.Duration `hcl:"watchdog_timeout" default:"3s" doc:"subscribe: how long the probe (a Read of the server state) sent after keepalive_count silent publishing intervals may take; unanswered, the server counts as hung: tags are marked bad and the source reconnects"`

	SecurityPolicy  string `hcl:"security_policy" default:"None" enum:"None|Basic256Sha256|Aes128_Sha256_RsaOaep|Aes256_Sha256_RsaPss|Basic256|Basic128Rsa15" doc:"security policy of the endpoint to use"`
	SecurityMode    string `hcl:"security_mode" default:"None" enum:"None|Sign|SignAndEncrypt" doc:"message security mode"`
	Username        string `hcl:"username" doc:"user name for username/password authentication (anonymous when empty)"`
	Password        string `hcl:"password" doc:"password; use env(\"NAME\") or file(\"path\") rather than a literal"`
	UserCertificate string `hcl:"user_certificate" doc:"X.509 user authentication: certificate file (DER or PEM)"`
	UserPrivateKey  string `hcl:"user_private_key" doc:"X.509 user authentication: private key file (PEM)"`
	Certificate     string `hcl:"certificate" doc:"application instance certificate file; default: generated on first run into <pki_dir>/own"`
	PrivateKey      string `hcl:"private_key" doc:"private key of certificate"`
	PKIDir          string `hcl:"pki_dir" doc:"certificate store with own/, trusted/ and rejected/ (default <data_dir>/pki/opcua)"`
	TrustServerCert string `hcl:"trust_server_cert" doc:"SHA-1 fingerprint of the server certificate to trust (instead of copying it to trusted/)"`
	AutoAccept      bool   `hcl:"auto_accept" doc:"trust any server certificate and store it in trusted/ — for labs only"`
	ApplicationURI  string `hcl:"application_uri" default:"urn:flowd:client" doc:"application URI in the generated certificate"`

	RequestTimeout time.Duration `hcl:"request_timeout" default:"10s" doc:"timeout of one request (connect, read, browse)"`
	ReconnectMin   time.Duration `hcl:"reconnect_min" default:"1s" doc:"first delay before reconnecting; doubles up to reconnect_max, with jitter"`
	ReconnectMax   time.Duration `hcl:"reconnect_max" default:"30s" doc:"longest delay between reconnection attempts"`
	AuthRetry      time.Duration `hcl:"auth_retry" default:"5m" doc:"delay before trying again after the server refused the user (BadUserAccessDenied, BadIdentityTokenRejected) or flowd's certificate: every attempt is a failed login on the PLC, and many lock the account"`
}

// NodeConfig is a node block.
type NodeConfig struct {
	Name             string        `hcl:"name,label"`
	ID               string        `hcl:"id,required" doc:"node id, e.g. ns=2;s=Line1.Temperature"`
	Asset            string        `hcl:"asset" doc:"asset for this node (default: the source's asset)"`
	SamplingInterval time.Duration `hcl:"sampling_interval" doc:"overrides the source's sampling_interval"`
	QueueSize        int           `hcl:"queue_size" doc:"overrides the source's queue_size"`
	Deadband         float64       `hcl:"deadband" doc:"overrides the source's deadband"`
	DeadbandType     string        `hcl:"deadband_type" doc:"overrides the source's deadband_type (none, absolute, percent)"`
}

// BrowseConfig is the browse block.
type BrowseConfig struct {
	Root      string   `hcl:"root" default:"i=85" doc:"node to start from: a node id (default the Objects folder) or a path of browse names below Objects, \"/Plant/Line1\" (\"/2:Plant\" names the namespace)"`
	MaxDepth  int      `hcl:"max_depth" default:"4" doc:"levels to descend (0: unlimited)"`
	Include   []string `hcl:"include" doc:"glob patterns on the browse path (Asset1/Tag*) or name; when set, only matching variables"`
	Exclude   []string `hcl:"exclude" doc:"glob patterns of variables to leave out"`
	AssetFrom string   `hcl:"asset_from" default:"parent" enum:"parent|source" doc:"asset of discovered variables: the parent object's browse name (see asset_levels), or the source's asset"`
	// Plant trees repeat names (Line1/Motor/Temp, Line2/Motor/Temp): the
	// parent alone does not tell such nodes apart.
	AssetLevels    int    `hcl:"asset_levels" default:"1" doc:"asset_from = \"parent\": how many object levels above a variable make its asset, joined by asset_separator: 1 the parent object (Motor), 2 with its parent (Line1/Motor), 0 every level below root"`
	AssetSeparator string `hcl:"asset_separator" default:"/" doc:"joins the levels of asset_levels"`
	OnDuplicate    string `hcl:"on_duplicate" default:"error" enum:"error|skip" doc:"two nodes that would make the same (asset, tag) series: error fails the session with an error naming both node ids; skip keeps the first one found and logs a warning naming both"`
}

// assetOf is the asset of a browsed variable under asset_from = "parent".
func (b *BrowseConfig) assetOf(v uacommon.Var) string {
	objs := v.Objects
	switch {
	case b.AssetLevels == 0 && len(objs) > 1:
		objs = objs[1:] // every level below root
	case b.AssetLevels > 0 && len(objs) > b.AssetLevels:
		objs = objs[len(objs)-b.AssetLevels:]
	}
	if len(objs) == 1 {
		return objs[0]
	}
	return strings.Join(objs, b.AssetSeparator)
}

type nodeSpec struct {
	tag, asset string
	id         *ua.NodeID
	sampling   time.Duration
	queue      int
	deadband   float64
	dbType     string
}

func fieldErr(field string, err error) error {
	return &engine.FieldError{Field: field, Offset: -1, Err: err}
}

// validate checks the config and resolves static nodes. Problems are
// reported in a fixed order (settings, nodes, browse) so an operator sees
// the same list on every run.
func (c *Config) validate() ([]nodeSpec, error) {
	var bad engine.Problems
	if c.Interval <= 0 {
		bad = append(bad, fieldErr("interval", fmt.Errorf("must be positive")))
	}
	c.checkSecurity(&bad)
	c.checkLimits(&bad)
	specs := c.staticNodes(&bad)
	checkDuplicateSeries(specs, &bad)
	if c.Browse != nil {
		c.Browse.check(&bad)
	}
	if len(c.Nodes) == 0 && len(c.Node) == 0 && c.Browse == nil {
		bad = append(bad, fieldErr("nodes", fmt.Errorf("no nodes: set nodes, node blocks or a browse block")))
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return specs, nil
}

// checkSecurity checks the channel security and user identity settings,
// which must agree with each other before a connection is even tried.
func (c *Config) checkSecurity(bad *engine.Problems) {
	if _, err := uacommon.PolicyURI(c.SecurityPolicy); err != nil {
		*bad = append(*bad, fieldErr("security_policy", err))
	}
	if mode, err := uacommon.Mode(c.SecurityMode); err != nil {
		*bad = append(*bad, fieldErr("security_mode", err))
	} else if (c.SecurityPolicy == "None") != (mode == ua.MessageSecurityModeNone) {
		*bad = append(*bad, fieldErr("security_mode", fmt.Errorf("security_policy %s needs security_mode %s", c.SecurityPolicy,
			map[bool]string{true: "None", false: "Sign or SignAndEncrypt"}[c.SecurityPolicy == "None"])))
	}
	if c.Username != "" && c.UserCertificate != "" {
		*bad = append(*bad, fieldErr("user_certificate", fmt.Errorf("set either username or user_certificate, not both")))
	}
	if (c.UserCertificate == "") != (c.UserPrivateKey == "") {
		*bad = append(*bad, fieldErr("user_private_key", fmt.Errorf("user_certificate and user_private_key go together")))
	}
	if (c.Certificate == "") != (c.PrivateKey == "") {
		*bad = append(*bad, fieldErr("private_key", fmt.Errorf("certificate and private_key go together")))
	}
	if c.Username != "" && c.SecurityPolicy == "None" {
		*bad = append(*bad, fieldErr("username", fmt.Errorf("a password would travel in clear text: choose a security_policy other than None")))
	}
}

// checkLimits checks the sizes, counts and durations of the session,
// subscription and reconnection settings.
func (c *Config) checkLimits(bad *engine.Problems) {
	if c.QueueSize < 1 || c.QueueSize > maxQueueSize {
		*bad = append(*bad, fieldErr("queue_size", fmt.Errorf("must be between 1 and %d", maxQueueSize)))
	}
	if c.MaxNodesPerRead < 0 || c.MaxNodesPerRead > maxPerRequest {
		*bad = append(*bad, fieldErr("max_nodes_per_read", fmt.Errorf("must be between 0 and %d", maxPerRequest)))
	}
	if c.MaxItemsPerSub < 1 || c.MaxItemsPerSub > maxPerRequest {
		*bad = append(*bad, fieldErr("max_items_per_subscription", fmt.Errorf("must be between 1 and %d", maxPerRequest)))
	}
	if c.Deadband < 0 {
		*bad = append(*bad, fieldErr("deadband", fmt.Errorf("must not be negative")))
	}
	if c.AuthRetry < c.ReconnectMin {
		*bad = append(*bad, fieldErr("auth_retry", fmt.Errorf("must be at least reconnect_min")))
	}
	if c.KeepAliveCount < 1 {
		*bad = append(*bad, fieldErr("keepalive_count", fmt.Errorf("must be at least 1")))
	}
	if c.LifetimeCount != 0 && c.LifetimeCount < 3*c.KeepAliveCount {
		*bad = append(*bad, fieldErr("lifetime_count", fmt.Errorf("must be at least 3 × keepalive_count (%d)", 3*c.KeepAliveCount)))
	}
	if c.WatchdogTimeout <= 0 {
		*bad = append(*bad, fieldErr("watchdog_timeout", fmt.Errorf("must be positive")))
	}
	if c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin {
		*bad = append(*bad, fieldErr("reconnect_max", fmt.Errorf("need 0 < reconnect_min ≤ reconnect_max")))
	}
}

// staticNodes resolves the nodes map (in tag order) and then the node
// blocks (in file order); a node with a bad setting is reported and left out.
func (c *Config) staticNodes(bad *engine.Problems) []nodeSpec {
	var specs []nodeSpec
	base := nodeSpec{asset: c.Asset, sampling: c.SamplingInterval, queue: c.QueueSize, deadband: c.Deadband, dbType: c.DeadbandType}
	for _, tagName := range sortedKeys(c.Nodes) {
		nid, err := ua.ParseNodeID(c.Nodes[tagName])
		if err != nil {
			*bad = append(*bad, fieldErr("nodes", fmt.Errorf("%s: bad node id %q: %v", tagName, c.Nodes[tagName], err)))
			continue
		}
		s := base
		s.tag, s.id = tagName, nid
		specs = append(specs, s)
	}
	for _, n := range c.Node {
		s, err := n.spec(base)
		if err != nil {
			*bad = append(*bad, fieldErr("node", err))
			continue
		}
		specs = append(specs, s)
	}
	return specs
}

// spec is the node block's nodeSpec: base (the source's settings) with the
// block's overrides applied.
func (n *NodeConfig) spec(base nodeSpec) (nodeSpec, error) {
	nid, err := ua.ParseNodeID(n.ID)
	if err != nil {
		return nodeSpec{}, fmt.Errorf("%s: bad node id %q: %v", n.Name, n.ID, err)
	}
	s := base
	s.tag, s.id = n.Name, nid
	if n.Asset != "" {
		s.asset = n.Asset
	}
	if n.SamplingInterval > 0 {
		s.sampling = n.SamplingInterval
	}
	if n.QueueSize > maxQueueSize {
		return nodeSpec{}, fmt.Errorf("%s: queue_size must be between 1 and %d", n.Name, maxQueueSize)
	}
	if n.QueueSize > 0 {
		s.queue = n.QueueSize
	}
	if n.DeadbandType != "" {
		switch n.DeadbandType {
		case "none", "absolute", "percent":
		default:
			return nodeSpec{}, fmt.Errorf("%s: deadband_type must be none, absolute or percent", n.Name)
		}
		s.dbType = n.DeadbandType
		s.deadband = n.Deadband
	} else if n.Deadband > 0 {
		// A deadband without a type means absolute, unless the source
		// already chose one.
		s.deadband = n.Deadband
		if s.dbType == "none" {
			s.dbType = "absolute"
		}
	}
	return s, nil
}

// checkDuplicateSeries reports static nodes that would write the same
// (asset, tag) series: their points would be indistinguishable downstream.
func checkDuplicateSeries(specs []nodeSpec, bad *engine.Problems) {
	seen := map[[2]string]string{}
	for _, sp := range specs {
		k := [2]string{sp.asset, sp.tag}
		if prev, dup := seen[k]; dup {
			*bad = append(*bad, fieldErr("node", fmt.Errorf("nodes %s and %s both make asset %q tag %q: give one a different tag or asset", prev, sp.id, sp.asset, sp.tag)))
		}
		seen[k] = sp.id.String()
	}
}

// check checks the browse block's root and patterns, so a typo fails at
// load time rather than on the first browse of a running session.
func (b *BrowseConfig) check(bad *engine.Problems) {
	if b.AssetLevels < 0 {
		*bad = append(*bad, fieldErr("browse", fmt.Errorf("asset_levels must not be negative")))
	}
	if uacommon.IsBrowsePath(b.Root) {
		if _, _, err := uacommon.ParseBrowsePath(b.Root); err != nil {
			*bad = append(*bad, fieldErr("browse", fmt.Errorf("root: %v", err)))
		}
	} else if _, err := ua.ParseNodeID(b.Root); err != nil {
		*bad = append(*bad, fieldErr("browse", fmt.Errorf("root: bad node id %q: %v", b.Root, err)))
	}
	for _, p := range append(append([]string(nil), b.Include...), b.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			*bad = append(*bad, fieldErr("browse", fmt.Errorf("bad pattern %q: %v", p, err)))
		}
	}
}

// Limits checked by validate: a server revises larger values down anyway,
// and each is held per node or per request.
const (
	maxQueueSize  = 10_000
	maxPerRequest = 100_000
)

func (b *BrowseConfig) match(p []string, name string) bool {
	full := path.Join(p...)
	m := func(pats []string) bool {
		for _, pat := range pats {
			if ok, _ := path.Match(pat, full); ok {
				return true
			}
			if ok, _ := path.Match(pat, name); ok {
				return true
			}
		}
		return false
	}
	if len(b.Include) > 0 && !m(b.Include) {
		return false
	}
	return !m(b.Exclude)
}
