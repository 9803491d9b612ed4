package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KubectlReleasesVariable names the environment variable that lists, colon-separated, the older
// kubectl releases the tests drive through the gateway: the ones scripts/testbed.sh builds and
// those the machine carries (`scripts/testbed.sh env` prints it).
const KubectlReleasesVariable = "GATEHOUSE_KUBECTL_RELEASES"

// KubectlRelease is a kubectl binary of an older release than the API server's.
type KubectlRelease struct {
	// Path is the binary.
	Path string
	// Version is the release the binary reports (kubectl version --client), e.g. v1.27.16.
	Version string
}

// Name is a short name for the release, usable in test and namespace names: "1-27-16".
func (r KubectlRelease) Name() string {
	return strings.ReplaceAll(strings.TrimPrefix(r.Version, "v"), ".", "-")
}

// KubectlReleases returns the older kubectl releases listed in $GATEHOUSE_KUBECTL_RELEASES
// (else what scripts/testbed.sh reports), each with the version it reports. An empty list, a
// missing binary or one that does not report a version is an error wrapping ErrMissing.
func KubectlReleases(ctx context.Context) ([]KubectlRelease, error) {
	list, set := os.LookupEnv(KubectlReleasesVariable)
	if !set {
		env, err := testbedEnv()
		if err != nil {
			return nil, err
		}
		list = env[KubectlReleasesVariable]
	}
	const fix = "run 'scripts/testbed.sh all' (or make testbed) to build and cache them"
	var releases []KubectlRelease
	for _, path := range filepath.SplitList(list) {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w: kubectl release %s (listed in $%s) not found; %s", ErrMissing, path, KubectlReleasesVariable, fix)
		}
		version, err := kubectlVersion(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("%w: kubectl release %s (listed in $%s): %w; %s", ErrMissing, path, KubectlReleasesVariable, err, fix)
		}
		releases = append(releases, KubectlRelease{Path: path, Version: version})
	}
	if len(releases) == 0 {
		return nil, fmt.Errorf("%w: no older kubectl release listed in $%s; %s", ErrMissing, KubectlReleasesVariable, fix)
	}
	return releases, nil
}

// kubectlVersion asks a kubectl binary which release it is.
func kubectlVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version", "--client", "--output=json").Output()
	if err != nil {
		return "", fmt.Errorf("kubectl version --client: %w", err)
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("kubectl version --client: %w", err)
	}
	if !strings.HasPrefix(v.ClientVersion.GitVersion, "v1.") {
		return "", fmt.Errorf("kubectl version --client reports %q, not a release", v.ClientVersion.GitVersion)
	}
	return v.ClientVersion.GitVersion, nil
}
