package pod

import (
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
)

// Op is one JSON Patch operation; the webhook only ever adds.
type Op struct {
	Path  string
	Value any
}

// wireOp is an Op as JSON Patch spells it.
type wireOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patchOptions: encoding/json/v2 (the whole patch in one call, no second pass over each
// value) with encoding/json v1's meaning of omitempty, so values are written as the API
// server writes them (plain v2 would also write readOnly:false and other zero fields).
// Strings come from annotations; should one hold invalid UTF-8, it is written as U+FFFD,
// as v1 did, rather than failing the patch.
var patchOptions = jsonv2.JoinOptions(json.OmitEmptyWithLegacySemantics(true), jsontext.AllowInvalidUTF8(true))

// MarshalJSON renders {"op":"add","path":...,"value":...}.
func (o Op) MarshalJSON() ([]byte, error) {
	b, err := jsonv2.Marshal(wireOp{Op: "add", Path: o.Path, Value: o.Value}, patchOptions)
	if err != nil {
		return nil, fmt.Errorf("encode patch operation at %s: %w", o.Path, err)
	}
	return b, nil
}

// MarshalPatch renders ops as a JSON Patch document.
func MarshalPatch(ops []Op) ([]byte, error) {
	wire := make([]wireOp, len(ops))
	for i, o := range ops {
		wire[i] = wireOp{Op: "add", Path: o.Path, Value: o.Value}
	}
	b, err := jsonv2.Marshal(wire, patchOptions)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	return b, nil
}
