package opcua

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// Var is a variable found by Browse.
type Var struct {
	NodeID *ua.NodeID
	// Name is the variable's browse name.
	Name string
	// Path is the browse names from below the root down to the variable.
	Path []string
	// Objects is the browse names of the objects from the root down to the
	// variable's parent (so never empty).
	Objects []string
}

// Parent is the browse name of the object holding the variable.
func (v Var) Parent() string { return v.Objects[len(v.Objects)-1] }

// browseBatch is how many nodes one Browse request asks about: one, since a
// folder of a thousand variables already makes an answer of ~40 KiB and
// servers that do not split answers into chunks (gopcua's) cannot send more
// than 64 KiB.
const browseBatch = 1

// maxRefsPerNode asks servers that support continuation points to page.
const maxRefsPerNode = 1000

type browseItem struct {
	id   *ua.NodeID
	path []string
}

// Browse walks the hierarchical references below root, breadth first, down
// to maxDepth levels (0: unlimited), and calls fn for every variable. Objects
// are descended into; variables are not (their properties are not tags).
func Browse(ctx context.Context, c *gopcua.Client, root *ua.NodeID, maxDepth int, fn func(Var)) error {
	seen := map[string]bool{root.String(): true}
	rootName := ""
	if q, err := c.Node(root).BrowseName(ctx); err == nil && q != nil {
		rootName = q.Name
	}
	level := []browseItem{{id: root}}
	for depth := 1; len(level) > 0 && (maxDepth <= 0 || depth <= maxDepth); depth++ {
		var next []browseItem
		for start := 0; start < len(level); start += browseBatch {
			batch := level[start:min(start+browseBatch, len(level))]
			req := &ua.BrowseRequest{
				View:                          &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)},
				RequestedMaxReferencesPerNode: maxRefsPerNode,
				NodesToBrowse:                 make([]*ua.BrowseDescription, len(batch)),
			}
			for i, it := range batch {
				req.NodesToBrowse[i] = &ua.BrowseDescription{
					NodeID:          it.id,
					BrowseDirection: ua.BrowseDirectionForward,
					ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
					IncludeSubtypes: true,
					NodeClassMask:   uint32(ua.NodeClassObject | ua.NodeClassVariable),
					ResultMask:      uint32(ua.BrowseResultMaskAll),
				}
			}
			res, err := c.Browse(ctx, req)
			if err != nil {
				return fmt.Errorf("browse: %w", err)
			}
			if len(res.Results) != len(batch) {
				return fmt.Errorf("browse: asked about %d nodes, got %d results", len(batch), len(res.Results))
			}
			for i, r := range res.Results {
				if r.StatusCode != ua.StatusOK {
					return fmt.Errorf("browse %s: %w", batch[i].id, r.StatusCode)
				}
				refs := r.References
				cp := r.ContinuationPoint
				for len(cp) > 0 {
					nres, err := c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
					if err != nil {
						return fmt.Errorf("browse next: %w", err)
					}
					if len(nres.Results) != 1 || nres.Results[0].StatusCode != ua.StatusOK {
						return fmt.Errorf("browse next %s: unexpected result", batch[i].id)
					}
					refs = append(refs, nres.Results[0].References...)
					cp = nres.Results[0].ContinuationPoint
				}
				objects := append([]string{rootName}, batch[i].path...)
				for _, ref := range refs {
					if ref.NodeID == nil || ref.NodeID.NodeID == nil || ref.BrowseName == nil {
						continue
					}
					nid := ref.NodeID.NodeID
					k := nid.String()
					if seen[k] {
						continue
					}
					seen[k] = true
					path := append(append([]string(nil), batch[i].path...), ref.BrowseName.Name)
					switch ref.NodeClass {
					case ua.NodeClassVariable:
						fn(Var{NodeID: nid, Name: ref.BrowseName.Name, Path: path, Objects: objects})
					case ua.NodeClassObject:
						next = append(next, browseItem{id: nid, path: path})
					}
				}
			}
		}
		level = next
	}
	return nil
}

// MaxNodesPerRead reads the server's OperationLimits/MaxNodesPerRead; 0 means
// the server states no limit (or does not say).
func MaxNodesPerRead(ctx context.Context, c *gopcua.Client) (int, error) {
	res, err := c.Read(ctx, &ua.ReadRequest{
		NodesToRead: []*ua.ReadValueID{{
			NodeID:      ua.NewNumericNodeID(0, id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
			AttributeID: ua.AttributeIDValue,
		}},
	})
	if err != nil {
		return 0, err
	}
	if len(res.Results) != 1 || res.Results[0].Status != ua.StatusOK || res.Results[0].Value == nil {
		return 0, nil
	}
	switch v := res.Results[0].Value.Value().(type) {
	case uint32:
		return int(v), nil
	case int32:
		return int(v), nil
	}
	return 0, nil
}

// IsBrowsePath reports whether a browse root is written as a path of browse
// names below the Objects folder ("/Plant/Line1", "/2:Plant") rather than a
// node id.
func IsBrowsePath(s string) bool { return strings.HasPrefix(s, "/") }

// ParseBrowsePath splits "/2:Plant/Line1" into qualified names; a name
// without "ns:" has namespace -1 (any).
func ParseBrowsePath(s string) ([]*ua.QualifiedName, []bool, error) {
	var names []*ua.QualifiedName
	var anyNS []bool
	for _, el := range strings.Split(strings.Trim(s, "/"), "/") {
		if el == "" {
			return nil, nil, fmt.Errorf("browse path %q has an empty element", s)
		}
		q := &ua.QualifiedName{Name: el}
		known := false
		if ns, name, ok := strings.Cut(el, ":"); ok {
			if n, err := strconv.ParseUint(ns, 10, 16); err == nil {
				q.NamespaceIndex, q.Name, known = uint16(n), name, true
			}
		}
		names = append(names, q)
		anyNS = append(anyNS, !known)
	}
	return names, anyNS, nil
}

// ResolveBrowsePath finds the node a browse path names, with the
// TranslateBrowsePathsToNodeIds service when every element has a namespace,
// else (or when the server does not offer the service) by browsing one level
// per element and matching browse names.
func ResolveBrowsePath(ctx context.Context, c *gopcua.Client, path string) (*ua.NodeID, error) {
	names, anyNS, err := ParseBrowsePath(path)
	if err != nil {
		return nil, err
	}
	objects := c.Node(ua.NewNumericNodeID(0, id.ObjectsFolder))
	if !slices.Contains(anyNS, true) {
		nid, err := objects.TranslateBrowsePathsToNodeIDs(ctx, names)
		if err == nil {
			return nid, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
	}
	cur := objects.ID
	for i, q := range names {
		refs, err := c.Node(cur).References(ctx, id.HierarchicalReferences, ua.BrowseDirectionForward, ua.NodeClassObject|ua.NodeClassVariable, true)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: browse: %w", path, err)
		}
		var next *ua.NodeID
		for _, r := range refs {
			if r.BrowseName != nil && r.BrowseName.Name == q.Name && (anyNS[i] || r.BrowseName.NamespaceIndex == q.NamespaceIndex) && r.NodeID != nil {
				next = r.NodeID.NodeID
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("resolve %s: no %q below %s", path, q.Name, cur)
		}
		cur = next
	}
	return cur, nil
}
