package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxDepth bounds the nesting of the JSON documents read, so that a
// hostile or broken server cannot exhaust the stack.
const maxDepth = 1000

// flatten reads one JSON value from r, a token at a time, and adds its
// keys under root to kvs (see [Client.Snapshot] for the rules). The
// document is never held whole in memory: only the keys, and the members
// of an array item until its name is known.
func flatten(r io.Reader, root string, kvs map[string]string) error {
	dec := json.NewDecoder(r)
	dec.UseNumber() // numbers keep their text: 1e21, 0.10
	f := flattener{dec: dec}
	emit := func(k, v string) { kvs[k] = v }
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return errors.New("empty body")
	}
	if err != nil {
		return err
	}
	if _, ok := tok.(json.Delim); !ok && root == "" {
		root = "/" // a document that is a bare value
	}
	if err := f.with(tok, root, emit, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF // the value was cut
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("data after the JSON value, at byte %d", dec.InputOffset())
		}
		return err
	}
	return nil
}

type flattener struct {
	dec *json.Decoder
}

// emitter receives one key and its value.
type emitter func(k, v string)

// with flattens the value that starts with tok at key.
func (f *flattener) with(tok json.Token, key string, emit emitter, depth int) error {
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
		}
		if t == '{' {
			return f.object(key, emit, nil, depth+1)
		}
		return f.array(key, emit, depth+1) // '[': a closing delimiter is never a value's first token
	case string:
		emit(key, t)
	case json.Number:
		emit(key, string(t))
	case bool:
		emit(key, strconv.FormatBool(t))
	case nil:
		emit(key, "null")
	default:
		return fmt.Errorf("unexpected JSON token %T", tok)
	}
	return nil
}

// object flattens the members of an object whose '{' was read: the member
// m is at key+"/"+m. When name is not nil, it receives the value of the
// member "name" if that is a non-empty string.
func (f *flattener) object(key string, emit emitter, name *string, depth int) error {
	for f.dec.More() {
		tok, err := f.dec.Token()
		if err != nil {
			return err
		}
		m, _ := tok.(string) // the decoder only gives strings as member names
		tok, err = f.dec.Token()
		if err != nil {
			return err
		}
		if name != nil && m == "name" {
			if s, ok := tok.(string); ok {
				*name = s
			} else {
				*name = ""
			}
		}
		if err := f.with(tok, key+"/"+m, emit, depth); err != nil {
			return err
		}
	}
	_, err := f.dec.Token() // '}'
	return err
}

// array flattens the items of an array whose '[' was read: item i is at
// key+"/"+i, or at key+"/"+name when it is an object whose member "name"
// is a non-empty string. The keys of such an object are kept aside until
// the object ends, since its name may come last.
func (f *flattener) array(key string, emit emitter, depth int) error {
	type pair struct{ k, v string }
	var buf []pair
	keep := func(k, v string) { buf = append(buf, pair{k, v}) }
	for i := 0; f.dec.More(); i++ {
		tok, err := f.dec.Token()
		if err != nil {
			return err
		}
		label := strconv.Itoa(i)
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if err := f.with(tok, key+"/"+label, emit, depth); err != nil {
				return err
			}
			continue
		}
		if depth >= maxDepth {
			return fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
		}
		var name string
		buf = buf[:0]
		if err := f.object("", keep, &name, depth+1); err != nil {
			return err
		}
		if name != "" {
			label = name
		}
		at := key + "/" + label
		for _, p := range buf {
			emit(at+p.k, p.v)
		}
	}
	_, err := f.dec.Token() // ']'
	return err
}
