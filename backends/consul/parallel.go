package consul

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/kvconf/kvconf/backends"
)

// A big listing with no previous one to share strings with (the first
// snapshot of a prefix: every -onetime run) is decoded on several cores.
//
// The body is read in fragments of about fragmentBytes, each cut where a
// pair seems to start: at a "{" after a "}" and a ",", with only white
// space between. A worker decodes each fragment on its own as the JSON
// array "[" + its pairs + "]": the "[" goes in a byte kept free before the
// fragment (the first fragment has its own), the "]" over the comma of the
// cut. A cut is a guess, since a key may hold "},{". But a fragment that
// starts at a true pair decodes without error only if its cut is true too:
// at a false cut, the "]" falls within a string or a pair, which then
// never ends. So the fragments are checked in order from the first, which
// starts where the body does: one that decodes is followed by one that
// starts at a true pair, and one that fails is decoded again joined with
// the next, until a join decodes or the body ends, whose error is then the
// listing's. The pairs come out as the sequential decoder gives them.

// fragmentBytes is about the size of a fragment.
const fragmentBytes = 128 << 10

// decodeParallel decodes the listing in body on workers goroutines, with
// fragments of about size bytes (see above). A body that fits one
// fragment, or that is not a JSON array, goes to sequential, which
// decodes it in one piece. Errors that do not wrap [errListing] are the
// body's.
func decodeParallel(body io.Reader, workers, size int, bufs *sync.Pool, sequential func(io.Reader) ([]backends.KV, error)) ([]backends.KV, error) {
	first := make([]byte, 1+size)
	n, err := io.ReadFull(body, first[1:])
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return sequential(bytes.NewReader(first[1 : 1+n]))
	case err != nil:
		return nil, err
	}
	s := scan{b: first[1:]}
	if s.ws(); s.i == len(s.b) || s.b[s.i] != '[' {
		return sequential(io.MultiReader(bytes.NewReader(first[1:]), body))
	}
	p := &pipeline{
		body:   body,
		size:   size,
		bufs:   bufs,
		blocks: make(chan []byte, 2*workers+2),
		jobs:   make(chan *fragment, workers),
		done:   make(chan *fragment, 2*workers+2),
	}
	p.blocks <- first
	for range cap(p.blocks) - 1 {
		p.blocks <- nil // made on first use
	}
	var wg sync.WaitGroup
	wg.Go(p.read)
	for range workers {
		wg.Go(p.work)
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return p.check()
}

// pipeline is one listing's decoding on several cores: a goroutine reads
// the body into fragments ([pipeline.read]), workers decode them
// ([pipeline.work]), and the caller checks their results in order
// ([pipeline.check]).
type pipeline struct {
	body    io.Reader
	size    int        // of a fragment's block, without its free first byte
	bufs    *sync.Pool // of *buffers, for the workers' decoders
	blocks  chan []byte
	jobs    chan *fragment // to the workers, in order
	done    chan *fragment // from the workers; closed once all have ended
	readErr error          // the body's, set before jobs is closed
}

// fragment is a piece of a listing, decoded on its own.
type fragment struct {
	i     int
	block []byte // the block b lies in, to give back; nil for a join
	// b is the fragment as a JSON array (see above). Unless last, b[comma]
	// is the comma of the cut, replaced by ']'.
	b           []byte
	comma       int
	first, last bool

	d   *decoder
	err error
}

// read reads the body into fragments for the workers; the first block,
// full, is the first in p.blocks.
func (p *pipeline) read() {
	defer close(p.jobs)
	block := <-p.blocks
	n := p.size // bytes read into block[1:]
	for i := 0; ; i++ {
		data := block[1 : 1+n]
		last := n < len(block)-1 // the body ended within the block
		cut, comma := -1, -1
		if !last {
			if cut, comma = lastCut(data); cut < 0 {
				// No pair starts in the block: read on into a larger one.
				grown := make([]byte, 2*len(block))
				copy(grown, block[:1+n])
				p.giveBack(block)
				m, err := io.ReadFull(p.body, grown[1+n:])
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					p.readErr = err
					return
				}
				block, n = grown, n+m
				i--
				continue
			}
		}
		f := &fragment{i: i, block: block, comma: -1, first: i == 0, last: last}
		start := 0
		if f.first {
			start = 1 // it has its own "["
		} else {
			block[0] = '['
		}
		if last {
			f.b = block[start : 1+n]
		} else {
			f.b = block[start : 1+cut]
			f.comma = 1 + comma - start
			f.b[f.comma] = ']'
		}
		p.jobs <- f
		if last {
			return
		}
		// The next block starts with the rest of this one, which is not
		// f's: the checker may give this block back meanwhile, but only
		// this goroutine takes blocks, so it is not written before the
		// copy (and copy allows the two to overlap).
		next := p.take(len(data) - cut)
		t := copy(next[1:], data[cut:])
		m, err := io.ReadFull(p.body, next[1+t:])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			p.readErr = err
			return
		}
		block, n = next, t+m
	}
}

// lastCut returns where the last pair that seems to start in data (after
// its first byte) starts, and the comma before it; -1, -1 if none does.
func lastCut(data []byte) (cut, comma int) {
	for j := len(data); ; {
		j = bytes.LastIndexByte(data[:j], '{')
		if j <= 0 {
			return -1, -1
		}
		c := skipSpaceBack(data, j)
		if c > 0 && data[c-1] == ',' {
			if b := skipSpaceBack(data, c-1); b > 0 && data[b-1] == '}' {
				return j, c - 1
			}
		}
	}
}

// skipSpaceBack returns the start of the white space that ends at i in b.
func skipSpaceBack(b []byte, i int) int {
	for i > 0 {
		switch b[i-1] {
		case ' ', '\t', '\n', '\r':
			i--
		default:
			return i
		}
	}
	return i
}

// take returns a block for a fragment that starts with n bytes left by the
// last one: a block of the pool, or when n leaves it too little room to
// read into, a larger one made for it.
func (p *pipeline) take(n int) []byte {
	b := <-p.blocks
	if n < p.size/2 {
		if b == nil {
			b = make([]byte, 1+p.size)
		}
		return b
	}
	p.blocks <- b // the token stays in the pool
	return make([]byte, 1+n+p.size)
}

// giveBack returns a block of the usual size to the pool of blocks.
func (p *pipeline) giveBack(block []byte) {
	if len(block) == 1+p.size {
		p.blocks <- block
	}
}

// work decodes fragments until there are no more.
func (p *pipeline) work() {
	b, _ := p.bufs.Get().(*buffers)
	if b == nil {
		b = new(buffers)
	}
	for f := range p.jobs {
		f.d = fragmentDecoder(f.b, b)
		f.err = f.d.read()
		b.page, b.spans = f.d.page[:0], f.d.spans[:0]
		p.done <- f
	}
	if cap(b.page) <= 2*pageBytes {
		p.bufs.Put(b)
	}
}

// fragmentDecoder returns a decoder of b, whole, with b's page and spans
// buffers.
func fragmentDecoder(b []byte, bufs *buffers) *decoder {
	d := newDecoder(bytes.NewReader(nil), nil)
	d.buf, d.s, d.eof = b, scan{b: b}, true
	if bufs != nil {
		d.page, d.spans = bufs.page, bufs.spans
	}
	return d
}

// check takes the workers' results in the order of the fragments, joins
// a fragment that failed with the next (see above), and returns the
// listing's pairs.
func (p *pipeline) check() ([]backends.KV, error) {
	ready := map[int]*fragment{}
	next, total := 0, 0
	var parts []*decoder
	var pending *fragment // failed, to join with the next fragment
	var err error
	for f := range p.done {
		ready[f.i] = f
		for err == nil {
			f, ok := ready[next]
			if !ok {
				break
			}
			delete(ready, next)
			next++
			if pending != nil {
				f = p.join(pending, f)
				pending = nil
			}
			switch {
			case f.err != nil && !f.last:
				pending = f
				continue
			case f.err != nil:
				// Decoded from a true pair to the body's end: the listing's
				// error, numbered from the body's first pair.
				d := fragmentDecoder(f.b, nil)
				d.base = total
				err = d.read()
			default:
				parts = append(parts, f.d)
				total += f.d.pairs()
			}
			if f.block != nil {
				p.giveBack(f.block)
			}
		}
	}
	switch {
	case p.readErr != nil:
		return nil, p.readErr
	case err != nil:
		return nil, err
	}
	kvs := make([]backends.KV, 0, total)
	for _, d := range parts {
		kvs = d.appendTo(kvs)
	}
	return kvs, nil
}

// join returns fragment f, which follows pending, joined to it and
// decoded, and gives their blocks back.
func (p *pipeline) join(pending, f *fragment) *fragment {
	pending.b[pending.comma] = ','
	b := make([]byte, 0, len(pending.b)+len(f.b)-1)
	b = append(append(b, pending.b...), f.b[1:]...) // f.b[0] is the "[" put before it
	j := &fragment{i: f.i, b: b, comma: -1, first: pending.first, last: f.last}
	if !f.last {
		j.comma = len(pending.b) - 1 + f.comma
	}
	for _, block := range [][]byte{pending.block, f.block} {
		if block != nil {
			p.giveBack(block)
		}
	}
	j.d = fragmentDecoder(j.b, nil)
	j.err = j.d.read()
	return j
}
