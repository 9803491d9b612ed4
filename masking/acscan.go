package masking

// minPairScan is the length from which scanPair scans a text in two halves.
const minPairScan = 32

// scanPair is scan16 in two halves scanned side by side: the table lookups of a scan depend on
// each other, each on the state the one before it reached, while the two halves' do not, so
// the processor runs them in parallel instead of waiting for each lookup before the next.
// The second half is scanned from maxKeywordLen-1 bytes before its start, so that a keyword
// that ends in it is seen whole (newEngine cuts keywords to maxKeywordLen bytes); a keyword
// that ends in the first half is seen by the first scan. It sets the same bits of trig as
// scan16, since the bits of a keyword's detectors are set wherever it ends.
func (a *automaton) scanPair(text []byte, trig []uint64) bool {
	const overlap = maxKeywordLen - 1
	if len(text) < minPairScan {
		return a.scan16(text, trig)
	}
	mid := len(text) / 2
	t1, t2 := text[:mid], text[mid-overlap:]
	t2a := t2[:len(t1)] // t2 is longer than t1 by overlap or overlap+1 bytes
	next, class, outFrom := a.next16, &a.class, uint32(a.outFrom)
	var s1, s2 uint32
	found := false
	for i := range t1 {
		s1 = uint32(next[s1+uint32(class[t1[i]])])
		s2 = uint32(next[s2+uint32(class[t2a[i]])])
		if s1 >= outFrom || s2 >= outFrom {
			found = true
			if s1 >= outFrom {
				a.trigger(int32(s1), trig)
			}
			if s2 >= outFrom {
				a.trigger(int32(s2), trig)
			}
		}
	}
	for _, c := range t2[len(t1):] {
		s2 = uint32(next[s2+uint32(class[c])])
		if s2 >= outFrom {
			found = true
			a.trigger(int32(s2), trig)
		}
	}
	return found
}

// minQuadScan is the length from which scanQuad scans a text in four quarters.
const minQuadScan = 64

// scanQuad is scanPair with four parts scanned side by side instead of two: the lookups of
// one part still wait for each other, and four chains of them keep the processor busier
// than two. Each part after the first is scanned from maxKeywordLen-1 bytes before its
// start, as scanPair's second half is, so that a keyword that ends in it is seen whole; the
// bits it sets are scan16's.
func (a *automaton) scanQuad(text []byte, trig []uint64) bool {
	const overlap = maxKeywordLen - 1
	if len(text) < minQuadScan {
		return a.scanPair(text, trig)
	}
	q := len(text) / 4
	// The parts in lock step: part k covers [k*q-overlap, (k+1)*q-overlap), the first from 0.
	t0 := text[:q]
	t1 := text[q-overlap : 2*q-overlap]
	t2 := text[2*q-overlap : 3*q-overlap]
	t3 := text[3*q-overlap : 4*q-overlap]
	next, class, outFrom := a.next16, &a.class, uint32(a.outFrom)
	var s0, s1, s2, s3 uint32
	found := false
	for i := range t0 {
		s0 = uint32(next[s0+uint32(class[t0[i]])])
		s1 = uint32(next[s1+uint32(class[t1[i]])])
		s2 = uint32(next[s2+uint32(class[t2[i]])])
		s3 = uint32(next[s3+uint32(class[t3[i]])])
		if max(s0, s1, s2, s3) >= outFrom {
			found = true
			for _, s := range [4]uint32{s0, s1, s2, s3} {
				if s >= outFrom {
					a.trigger(int32(s), trig)
				}
			}
		}
	}
	// The last overlap bytes of parts 1 to 3, then what is left of the text after part 3.
	u1 := text[2*q-overlap : 2*q]
	u2 := text[3*q-overlap : 3*q]
	u3 := text[4*q-overlap:]
	for i := range u1 {
		s1 = uint32(next[s1+uint32(class[u1[i]])])
		s2 = uint32(next[s2+uint32(class[u2[i]])])
		s3 = uint32(next[s3+uint32(class[u3[i]])])
		if max(s1, s2, s3) >= outFrom {
			found = true
			for _, s := range [3]uint32{s1, s2, s3} {
				if s >= outFrom {
					a.trigger(int32(s), trig)
				}
			}
		}
	}
	for _, c := range u3[len(u1):] {
		s3 = uint32(next[s3+uint32(class[c])])
		if s3 >= outFrom {
			found = true
			a.trigger(int32(s3), trig)
		}
	}
	return found
}
