// Package sparkplug speaks Sparkplug B (specification v3.0) over MQTT: the
// host side decodes births, data and deaths into points with the alias
// tables and sequence numbers they need (Decoder, State), and the edge side
// builds the births, data and deaths of an edge node (EdgeNode). The payload
// types are generated from the specification's schema (package sproto).
package sparkplug

import (
	"errors"
	"fmt"
	"strings"
)

// Namespace is the first level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// Message types (the third topic level).
const (
	NBIRTH = "NBIRTH"
	NDATA  = "NDATA"
	NDEATH = "NDEATH"
	NCMD   = "NCMD"
	DBIRTH = "DBIRTH"
	DDATA  = "DDATA"
	DDEATH = "DDEATH"
	DCMD   = "DCMD"
	STATE  = "STATE"
)

// RebirthMetric is the node control metric a host sets to true in an NCMD
// to ask an edge node for its births again.
const RebirthMetric = "Node Control/Rebirth"

// BdSeqMetric is the birth/death sequence metric of NBIRTH and NDEATH.
const BdSeqMetric = "bdSeq"

// Topic is a parsed Sparkplug B topic: spBv1.0/group/TYPE/node[/device].
// The strings are slices of the topic they were parsed from.
type Topic struct {
	Group, Type, Node, Device string
}

// ParseTopic splits a Sparkplug B topic. STATE topics (spBv1.0/STATE/host)
// give Type STATE and the host id in Node.
func ParseTopic(topic string) (Topic, error) {
	ns, rest, ok := strings.Cut(topic, "/")
	if !ok || ns != Namespace {
		return Topic{}, fmt.Errorf("topic %q is not in the %s namespace", topic, Namespace)
	}
	var t Topic
	t.Group, rest, ok = strings.Cut(rest, "/")
	if t.Group == STATE {
		if !ok || rest == "" || strings.Contains(rest, "/") {
			return Topic{}, fmt.Errorf("STATE topic %q must be %s/STATE/<host id>", topic, Namespace)
		}
		return Topic{Type: STATE, Node: rest}, nil
	}
	if !ok || t.Group == "" {
		return Topic{}, fmt.Errorf("topic %q has no message type", topic)
	}
	t.Type, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return Topic{}, fmt.Errorf("topic %q has no edge node id", topic)
	}
	t.Node, t.Device, _ = strings.Cut(rest, "/")
	if t.Node == "" {
		return Topic{}, fmt.Errorf("topic %q has an empty edge node id", topic)
	}
	switch t.Type {
	case NBIRTH, NDATA, NDEATH, NCMD:
		if t.Device != "" {
			return Topic{}, fmt.Errorf("topic %q: %s takes no device id", topic, t.Type)
		}
	case DBIRTH, DDATA, DDEATH, DCMD:
		if t.Device == "" || strings.Contains(t.Device, "/") {
			return Topic{}, fmt.Errorf("topic %q: %s needs exactly one device id", topic, t.Type)
		}
	default:
		return Topic{}, fmt.Errorf("topic %q: unknown message type %q", topic, t.Type)
	}
	return t, nil
}

// CheckID checks a group, edge node or device id: a topic level without
// wildcards.
func CheckID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s id must not be empty", what)
	case strings.ContainsAny(id, "/+#"):
		return fmt.Errorf("%s id %q must not contain /, + or #", what, id)
	}
	return nil
}

// NodeTopic is spBv1.0/group/TYPE/node.
func NodeTopic(group, typ, node string) string {
	return Namespace + "/" + group + "/" + typ + "/" + node
}

// DeviceTopic is spBv1.0/group/TYPE/node/device.
func DeviceTopic(group, typ, node, device string) string {
	return Namespace + "/" + group + "/" + typ + "/" + node + "/" + device
}

var errNoValue = errors.New("metric has no value and is not null")
