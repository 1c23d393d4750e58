package onnx

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"irl/atomicfile"
	"irl/onnx/onnxpb"
)

// protobufLimit is the largest message protobuf serialises: 2 GiB.
const protobufLimit = 2<<30 - 1

// WriteFile writes the graph as an .onnx file. When its initializers total
// more than externalAbove bytes (or would overflow protobuf's 2 GiB limit),
// the large ones go to an external-data file PATH.data beside it, as ONNX's
// external-data convention describes, 4 KiB-aligned so readers can mmap them.
// externalAbove ≤ 0 means "only when needed". Both files are written under
// temporary names and renamed.
func (g *Graph) WriteFile(path string, externalAbove int64) error {
	m := g.Model()
	var total int64
	for _, t := range m.Graph.Initializer {
		total += int64(len(t.RawData))
	}
	limit := externalAbove
	if limit <= 0 {
		limit = protobufLimit - 64<<20 // room for the graph itself
	}
	if total > limit {
		dataName := filepath.Base(path) + ".data"
		dataPath := filepath.Join(filepath.Dir(path), dataName)
		// Copy the initializer list so the graph itself keeps its raw data.
		inits := make([]*onnxpb.TensorProto, len(m.Graph.Initializer))
		err := atomicfile.Write(dataPath, func(f io.Writer) error {
			var off int64
			for i, t := range m.Graph.Initializer {
				inits[i] = t
				if len(t.RawData) < 1024 {
					continue // small constants stay inline
				}
				if pad := (4096 - off%4096) % 4096; pad > 0 {
					if _, err := f.Write(make([]byte, pad)); err != nil {
						return err
					}
					off += pad
				}
				if _, err := f.Write(t.RawData); err != nil {
					return err
				}
				c := proto.Clone(t).(*onnxpb.TensorProto)
				c.RawData = nil
				c.DataLocation = onnxpb.TensorProto_EXTERNAL
				c.ExternalData = []*onnxpb.StringStringEntryProto{
					{Key: "location", Value: dataName},
					{Key: "offset", Value: strconv.FormatInt(off, 10)},
					{Key: "length", Value: strconv.Itoa(len(t.RawData))},
				}
				inits[i] = c
				off += int64(len(t.RawData))
			}
			return nil
		})
		if err != nil {
			return err
		}
		m.Graph.Initializer = inits
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("onnx: serialising %s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, b)
}

// inlineLimit is the size of initializers up to which a graph goes to ONNX
// Runtime as bytes; past it, through a file with external data.
var inlineLimit int64 = 1 << 30

// NewGraphSession opens a session for a graph built in Go. Graphs whose
// weights fit comfortably in one protobuf message go over as bytes; larger
// ones (past 1 GiB of initializers, e.g. pythia-1b at 4 GB) are written to a
// temporary .onnx file with an external-data file, which ONNX Runtime reads,
// and the files are removed once the session holds the weights.
func NewGraphSession(g *Graph, inputs, outputs []string, o Options) (*Session, error) {
	var total int64
	for _, t := range g.inits {
		total += int64(len(t.RawData))
	}
	if total <= inlineLimit {
		model, err := g.Marshal()
		if err != nil {
			return nil, err
		}
		return NewSession(model, "", inputs, outputs, o)
	}
	dir, err := os.MkdirTemp("", "irl-graph-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, g.name+".onnx")
	if err := g.WriteFile(path, inlineLimit); err != nil {
		return nil, err
	}
	return NewSession(nil, path, inputs, outputs, o)
}
