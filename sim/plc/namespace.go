package plc

import (
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// namespace serves the PLC's nodes straight from its tag table: no per-node
// server objects, so large address spaces stay cheap.
type namespace struct {
	plc *PLC
	id  uint16
}

var _ server.NameSpace = (*namespace)(nil)

func (ns *namespace) Name() string          { return NamespaceURI }
func (ns *namespace) ID() uint16            { return ns.id }
func (ns *namespace) SetID(id uint16)       { ns.id = id }
func (ns *namespace) Objects() *server.Node { return nil }
func (ns *namespace) Root() *server.Node    { return nil }

// AddNode is not supported: the address space is generated.
func (ns *namespace) AddNode(n *server.Node) *server.Node { return n }

// lookup resolves a node id: i ≥ 0 is a tag index, i < 0 is asset -1-i.
func (ns *namespace) lookup(nid *ua.NodeID) (int, bool) {
	if nid == nil || nid.Namespace() != ns.id {
		return 0, false
	}
	switch nid.Type() {
	case ua.NodeIDTypeString:
		i, ok := ns.plc.byStr[nid.StringID()]
		return i, ok
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		n := int(nid.IntID())
		switch {
		case n >= tagIDBase && n-tagIDBase < len(ns.plc.tags):
			return n - tagIDBase, true
		case n >= 1 && n <= len(ns.plc.assets):
			return -n, true
		}
	}
	return 0, false
}

func (ns *namespace) Node(nid *ua.NodeID) *server.Node {
	i, ok := ns.lookup(nid)
	if !ok {
		return nil
	}
	if i < 0 {
		return ns.plc.assets[-1-i]
	}
	tg := ns.plc.tags[i]
	return server.NewVariableNode(tg.numID, tg.name, func() *ua.DataValue { return tg.val.Load() })
}

func bad(code ua.StatusCode) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueServerTimestamp | ua.DataValueStatusCode, ServerTimestamp: time.Now(), Status: code}
}

func val(v any) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)}
}

func (ns *namespace) Attribute(nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	i, ok := ns.lookup(nid)
	if !ok {
		return bad(ua.StatusBadNodeIDUnknown)
	}
	if i < 0 {
		name := ns.plc.names[-1-i]
		switch attr {
		case ua.AttributeIDNodeID:
			return val(ua.NewNumericNodeID(ns.id, uint32(-i)))
		case ua.AttributeIDNodeClass:
			return val(int32(ua.NodeClassObject))
		case ua.AttributeIDBrowseName:
			return val(&ua.QualifiedName{NamespaceIndex: ns.id, Name: name})
		case ua.AttributeIDDisplayName:
			return val(ua.NewLocalizedText(name))
		case ua.AttributeIDDescription:
			return val(ua.NewLocalizedText("asset " + name))
		case ua.AttributeIDEventNotifier:
			return val(byte(0))
		}
		return bad(ua.StatusBadAttributeIDInvalid)
	}
	tg := ns.plc.tags[i]
	switch attr {
	case ua.AttributeIDValue:
		return tg.val.Load()
	case ua.AttributeIDNodeID:
		return val(tg.numID)
	case ua.AttributeIDNodeClass:
		return val(int32(ua.NodeClassVariable))
	case ua.AttributeIDBrowseName:
		return val(&ua.QualifiedName{NamespaceIndex: ns.id, Name: tg.name})
	case ua.AttributeIDDisplayName:
		return val(ua.NewLocalizedText(tg.name))
	case ua.AttributeIDDescription:
		return val(ua.NewLocalizedText(tg.sid))
	case ua.AttributeIDDataType:
		return val(ua.NewNumericNodeID(0, typeIDs[tg.typ]))
	case ua.AttributeIDValueRank:
		return val(int32(-1))
	case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
		return val(byte(ua.AccessLevelTypeCurrentRead))
	case ua.AttributeIDMinimumSamplingInterval:
		return val(float64(ns.plc.cfg.Interval / time.Millisecond))
	case ua.AttributeIDHistorizing:
		return val(false)
	}
	return bad(ua.StatusBadAttributeIDInvalid)
}

func (ns *namespace) SetAttribute(*ua.NodeID, ua.AttributeID, *ua.DataValue) ua.StatusCode {
	return ua.StatusBadNotWritable
}

func (ns *namespace) Browse(bd *ua.BrowseDescription) *ua.BrowseResult {
	i, ok := ns.lookup(bd.NodeID)
	if !ok {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	if i >= 0 || bd.BrowseDirection == ua.BrowseDirectionInverse {
		return &ua.BrowseResult{StatusCode: ua.StatusGood, References: []*ua.ReferenceDescription{}}
	}
	if bd.NodeClassMask != 0 && bd.NodeClassMask&uint32(ua.NodeClassVariable) == 0 {
		return &ua.BrowseResult{StatusCode: ua.StatusGood, References: []*ua.ReferenceDescription{}}
	}
	a := -1 - i
	per := ns.plc.cfg.Tags
	refs := make([]*ua.ReferenceDescription, 0, per)
	hasComponent := ua.NewNumericNodeID(0, id.HasComponent)
	typeDef := ua.NewNumericExpandedNodeID(0, id.BaseDataVariableType)
	for _, tg := range ns.plc.tags[a*per : (a+1)*per] {
		refs = append(refs, &ua.ReferenceDescription{
			ReferenceTypeID: hasComponent,
			IsForward:       true,
			NodeID:          ua.NewExpandedNodeID(tg.numID, "", 0),
			BrowseName:      &ua.QualifiedName{NamespaceIndex: ns.id, Name: tg.name},
			DisplayName:     ua.NewLocalizedText(tg.name),
			NodeClass:       ua.NodeClassVariable,
			TypeDefinition:  typeDef,
		})
	}
	return &ua.BrowseResult{StatusCode: ua.StatusGood, References: refs}
}
