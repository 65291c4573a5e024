package podreview

import (
	"bytes"
	"encoding/json"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// encodePatch sets resp.Patch to the bytes Response.Complete would marshal
// from resp.Patches, written into buf, and clears Patches so Complete does
// not marshal them again. Complete marshals each operation through its MarshalJSON and then
// re-scans the result to compact it; here each value is encoded once into
// one buffer. Same bytes: tests compare whole answers with
// admission.Webhook's on every golden and fuzz input.
//
// A Marshalled value is written as it is.
func encodePatch(resp *admission.Response, buf *bytes.Buffer) error {
	if len(resp.Patches) == 0 {
		return nil
	}
	value := valueWriter(buf)
	buf.WriteByte('[')
	for i, op := range resp.Patches {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := value(op.Operation); err != nil {
			return err
		}
		buf.WriteString(`,"path":`)
		if err := value(op.Path); err != nil {
			return err
		}
		// jsonpatch writes "value":null for an add or replace of nothing,
		// and leaves it out of other operations.
		switch {
		case op.Value != nil:
			buf.WriteString(`,"value":`)
			if m, ok := op.Value.(Marshalled); ok && len(m) > 0 {
				buf.Write(m)
			} else if err := value(op.Value); err != nil {
				return err
			}
		case op.Operation == "add" || op.Operation == "replace":
			buf.WriteString(`,"value":null`)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	resp.Patch = buf.Bytes()
	resp.Patches = nil
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	return nil
}

// Marshalled is a patch value its handler has already encoded, as
// json.Marshal encodes it (compact, HTML escaped): a memoised encoding, say.
// The fast path writes it as it is; admission.Webhook compacts what
// MarshalJSON returns, which leaves those bytes as they are, so both paths
// answer alike while the handler keeps to that form. Any other value, a json.RawMessage included, is encoded as
// admission.Webhook encodes it.
type Marshalled []byte

// MarshalJSON returns m; an empty m is null.
func (m Marshalled) MarshalJSON() ([]byte, error) {
	if len(m) == 0 {
		return []byte("null"), nil
	}
	return m, nil
}

// valueWriter returns a function that appends v to buf as json.Marshal
// encodes it (HTML escaped), without the newline an Encoder ends it with.
func valueWriter(buf *bytes.Buffer) func(v any) error {
	enc := json.NewEncoder(buf)
	return func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
		return nil
	}
}
