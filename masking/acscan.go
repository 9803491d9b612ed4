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
