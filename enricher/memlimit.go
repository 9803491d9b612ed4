package enricher

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MemoryLimitShare is the share of the container's memory limit the enricher gives the Go
// runtime as its soft limit (GOMEMLIMIT): the rest is for what the runtime does not count
// (stacks of threads outside Go, the binary, page tables) and for reaching the limit gently.
const MemoryLimitShare = 0.9

// cgroupUnlimited is the smallest value cgroup v1 reports for "no limit" (it rounds 2^63-1 down
// to a page).
const cgroupUnlimited = 1 << 62

// CgroupMemoryLimit returns the memory limit of the cgroup this process runs in, in bytes, or 0
// when it has none. procSelfCgroup is /proc/self/cgroup and root the cgroup file system mount,
// /sys/fs/cgroup; tests pass others. It reads cgroup v2 (memory.max) and v1
// (memory/memory.limit_in_bytes), looking first in the process's own cgroup, then at the root of
// the mount (a container with its own cgroup namespace sees its cgroup there).
func CgroupMemoryLimit(procSelfCgroup, root string) (int64, error) {
	var candidates []string
	if f, err := os.Open(procSelfCgroup); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// hierarchy-ID:controller-list:path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"))
			case hasController(parts[1], "memory"):
				candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"))
			}
		}
		_ = f.Close()
	}
	candidates = append(candidates, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	for _, path := range candidates {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("enricher: read %s: %w", path, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("enricher: %s holds %q, not a number of bytes", path, v)
		}
		if n <= 0 || n >= cgroupUnlimited {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
