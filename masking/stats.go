package masking

// Stats counts what a call masked, so that the audit trail can record that something was
// masked without recording what.
type Stats struct {
	// Fields is the number of values (or parts of texts) replaced by placeholders.
	Fields int
	// Detectors counts the masked values by the name of the detector or rule that masked them,
	// e.g. "secret-data", "jwt", "keyword-entropy". It is nil when nothing was masked.
	Detectors map[string]int
}

// Merge adds the counts of o to s.
func (s *Stats) Merge(o Stats) {
	s.Fields += o.Fields
	if len(o.Detectors) == 0 {
		return
	}
	if s.Detectors == nil {
		s.Detectors = make(map[string]int, len(o.Detectors))
	}
	for k, v := range o.Detectors {
		s.Detectors[k] += v
	}
}
