package console

import "strings"

// diffLine is one line of a unified diff: Op is ' ' (unchanged), '-' (only in the old
// object), '+' (only in the new one) or '~' (unchanged lines left out).
type diffLine struct {
	Op   string
	Text string
}

// maxDiffCells bounds the work of one diff; larger objects are shown whole instead.
const maxDiffCells = 4 << 20

// lineDiff returns the lines of b compared with a, keeping context unchanged lines around
// each change. It returns nil when they are equal or too large to compare.
func lineDiff(a, b string, context int) []diffLine {
	x := strings.Split(strings.TrimRight(a, "\n"), "\n")
	y := strings.Split(strings.TrimRight(b, "\n"), "\n")
	if len(x)*len(y) > maxDiffCells {
		return nil
	}
	// Longest common subsequence, by dynamic programming from the end.
	n, m := len(x), len(y)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var all []diffLine
	changed := false
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			all = append(all, diffLine{" ", x[i]})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, diffLine{"-", x[i]})
			changed = true
			i++
		default:
			all = append(all, diffLine{"+", y[j]})
			changed = true
			j++
		}
	}
	if !changed {
		return nil
	}
	// Keep context lines around changes; fold the rest.
	keep := make([]bool, len(all))
	for k, l := range all {
		if l.Op != " " {
			for c := max(0, k-context); c <= min(len(all)-1, k+context); c++ {
				keep[c] = true
			}
		}
	}
	var out []diffLine
	for k, l := range all {
		if keep[k] {
			out = append(out, l)
		} else if len(out) == 0 || out[len(out)-1].Op != "~" {
			out = append(out, diffLine{"~", "…"})
		}
	}
	return out
}
