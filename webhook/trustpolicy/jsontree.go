package trustpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The policy grammar needs two things encoding/json's map and struct decoding loses: the
// order of an object's members (findings follow document order) and duplicate member
// names (which IAM resolves in a way we cannot know, so they are rejected). This small
// ordered tree is built from encoding/json's tokenizer, which does the actual JSON syntax.

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

func (k jsonKind) String() string {
	switch k {
	case jsonNull:
		return "null"
	case jsonBool:
		return "a boolean"
	case jsonNumber:
		return "a number"
	case jsonString:
		return "a string"
	case jsonArray:
		return "a list"
	default:
		return "an object"
	}
}

type jsonValue struct {
	kind jsonKind
	text string // string value, number literal, or "true"/"false"
	arr  []jsonValue
	obj  []jsonMember
}

type jsonMember struct {
	name  string
	value jsonValue
}

// maxNesting bounds recursion; a trust policy is never more than 5 levels deep.
const maxNesting = 32

func decodeJSON(s string) (jsonValue, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return jsonValue{}, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonValue{}, err
		}
		return jsonValue{}, fmt.Errorf("unexpected %v after the policy object", tok)
	}
	return v, nil
}

func readJSON(dec *json.Decoder, depth int) (jsonValue, error) {
	if depth > maxNesting {
		return jsonValue{}, fmt.Errorf("nested deeper than %d levels", maxNesting)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return jsonValue{}, io.ErrUnexpectedEOF
		}
		return jsonValue{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jsonValue{kind: jsonNull}, nil
	case bool:
		if t {
			return jsonValue{kind: jsonBool, text: "true"}, nil
		}
		return jsonValue{kind: jsonBool, text: "false"}, nil
	case json.Number:
		return jsonValue{kind: jsonNumber, text: string(t)}, nil
	case string:
		return jsonValue{kind: jsonString, text: t}, nil
	case json.Delim:
		if t == '[' {
			v := jsonValue{kind: jsonArray}
			for dec.More() {
				e, err := readJSON(dec, depth+1)
				if err != nil {
					return jsonValue{}, err
				}
				v.arr = append(v.arr, e)
			}
			_, err := dec.Token() // ']'
			return v, err
		}
		v := jsonValue{kind: jsonObject}
		for dec.More() {
			nt, err := dec.Token()
			if err != nil {
				return jsonValue{}, err
			}
			name, _ := nt.(string) // the tokenizer guarantees a string here
			e, err := readJSON(dec, depth+1)
			if err != nil {
				return jsonValue{}, err
			}
			v.obj = append(v.obj, jsonMember{name: name, value: e})
		}
		_, err := dec.Token() // '}'
		return v, err
	}
	return jsonValue{}, fmt.Errorf("unexpected JSON token %v", tok)
}

// duplicateName returns the first member name that repeats another one, ignoring case
// (IAM element names and condition keys are case-insensitive).
func duplicateName(members []jsonMember) (string, bool) {
	if len(members) <= 16 {
		for i := 1; i < len(members); i++ {
			for j := 0; j < i; j++ {
				if strings.EqualFold(members[i].name, members[j].name) {
					return members[i].name, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(members))
	for _, m := range members {
		k := strings.ToLower(m.name)
		if _, ok := seen[k]; ok {
			return m.name, true
		}
		seen[k] = struct{}{}
	}
	return "", false
}
