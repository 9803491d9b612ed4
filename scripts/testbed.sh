#!/usr/bin/env bash
# testbed.sh obtains and caches the real components Gatehouse's tests run against:
#   kube   kube-apiserver, kubectl and etcd, built from Go modules (no downloads besides modules)
#   clickhouse  the ClickHouse engine (libchdb.so) from the npm registry, checksum-verified
#   dex    Dex, a real OpenID Connect provider for the console's browser login tests, built from Go modules
#   helm   the helm CLI (v4), built from its Go module (charts/gatehouse is linted, rendered and installed
#          with it; the end-to-end tests drive Helm through the gateway with it)
#   helm3  the helm CLI of the previous major version (v3), built the same way, for the end-to-end tests
#   kubectls  older kubectl releases (KUBECTL_RELEASES) for the client version matrix, built like kubectl
#          unless the machine carries their minor
#   all    all of them (default)
#   env    print the environment variables the tests read, for eval "$(scripts/testbed.sh env)"
#
# Everything lands under $GATEHOUSE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse), in folders
# keyed by version and recipe revision, so a warm machine skips every step. Concurrent runs are serialised
# with flock.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
CHDB_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="${CHDB_VERSION:-26.7.3-stable.1}"
CHDB_SHA1="d2905fafd0e0ac0e231cccadd1f0f6d010977297"
# Dex publishes no Go module versions its cmd/dex builds at; this pseudo-version is v2.45.1.
DEX_VERSION="${DEX_VERSION:-v0.0.0-20260303133905-11d2eeb52b42}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"
HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"
# Older kubectl releases the proxy and the end-to-end tests drive through the gateway, chosen for
# the streaming protocols: 1.27 speaks only SPDY for exec, attach and port-forward; 1.30 is the
# first whose exec and attach use WebSocket by default. Each is the last patch of its minor.
KUBECTL_RELEASES="${KUBECTL_RELEASES:-v1.27.16 v1.30.14}"
# kubectl packages some machines carry side by side (the Google Cloud CLI's), named kubectl.1.<minor>:
# they add minors to the matrix for free and stand in for a release of the same minor, which is then
# not built.
MACHINE_KUBECTLS=/usr/lib/google-cloud-sdk/bin
# Bump when the build recipe changes so stale caches are rebuilt.
RECIPE=r1

CACHE="${GATEHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gatehouse}"
KUBE_DIR="$CACHE/kube/$KUBE_VERSION-etcd$ETCD_VERSION-$RECIPE"
CHDB_DIR="$CACHE/clickhouse/$CHDB_VERSION"
DEX_DIR="$CACHE/dex/$DEX_VERSION-$RECIPE"
HELM_DIR="$CACHE/helm/$HELM_VERSION-$RECIPE"
HELM3_DIR="$CACHE/helm/$HELM3_VERSION-$RECIPE"
kubectl_dir() { echo "$CACHE/kubectl/$1-$RECIPE"; }

# The module proxy alone: direct VCS fetches hang where only the proxy is reachable.
GOPROXY="$(go env GOPROXY)"
export GOPROXY="${GOPROXY%,direct}"
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
# The test bed's binaries carry no debug information: they link with -s -w, and the compiler
# writes no DWARF either, which takes about a tenth off a cold build's CPU time. (It does not
# change what the binaries do, so RECIPE stays: binaries cached before are as good.)
NODWARF=-gcflags=all=-dwarf=false

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'testbed: %s\n' "$*" >&2; exit 1; }

# elapsed prints a dot every 30 s while a long step runs, so CI logs show progress.
with_progress() {
	local what=$1; shift
	local start=$SECONDS
	log "$what (started $(date +%T))"
	( while sleep 30; do printf '    ... %s: %ds\n' "$what" $((SECONDS - start)) >&2; done ) &
	local ticker=$!
	local rc=0
	"$@" || rc=$?
	kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
	[ "$rc" -eq 0 ] || die "$what failed (exit $rc)"
	log "$what done in $((SECONDS - start))s"
}

# kube_module writes, into dir, a module that builds the tools (commands of k8s.io/kubernetes) of a
# Kubernetes release. kubernetes' go.mod replaces its staging modules with ./staging paths, which a
# module dependency cannot use; each is pinned to the published module of the same minor instead.
kube_module() {
	local version=$1 dir=$2; shift 2
	local gomod minor staging m
	gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$version"
	minor=$(echo "$version" | cut -d. -f2)
	staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "$gomod")
	[ -n "$staging" ] || die "no staging replaces found in $gomod"
	{
		echo "module gatehouse.local/testbed/kube"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $version"
		echo
		echo "tool ("
		for m in "$@"; do echo "	$m"; done
		echo ")"
		echo
		for m in $staging; do echo "replace $m => $m v0.$minor.${version##*.}"; done
	} >"$dir/go.mod"
}

# kube_ldflags stamps the version the way kubernetes' hack/lib/version.sh does, or /version (and
# kubectl version) reports a placeholder.
kube_ldflags() {
	local version=$1 minor ld="-s -w" pkg
	minor=$(echo "$version" | cut -d. -f2)
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$ld"
}

# thp_hint says, before the longest build, how the kernel could make builds shorter: Go does not
# ask for transparent huge pages, and on a virtual machine faulting its memory in 4 KiB at a time
# took a third of a cold build's time (README, "Durations").
thp_hint() {
	local f=/sys/kernel/mm/transparent_hugepage/enabled mode
	mode=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f" 2>/dev/null) || return 0
	if [ -n "$mode" ] && [ "$mode" != always ]; then
		log "transparent huge pages are on \"$mode\": builds take about a third less time with \"always\" (as root: echo always > $f)"
	fi
}

build_kube() {
	if [ -x "$KUBE_DIR/bin/kube-apiserver" ] && [ -x "$KUBE_DIR/bin/etcd" ] && [ -x "$KUBE_DIR/bin/kubectl" ]; then
		log "kube $KUBE_VERSION + etcd $ETCD_VERSION cached in $KUBE_DIR/bin"
		return
	fi
	thp_hint
	local work="$KUBE_DIR/src"
	rm -rf "$work" && mkdir -p "$work/kube" "$work/etcd" "$KUBE_DIR/bin"

	kube_module "$KUBE_VERSION" "$work/kube" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
	cat >"$work/etcd/go.mod" <<-MOD
	module gatehouse.local/testbed/etcd

	go 1.26

	require go.etcd.io/etcd/server/v3 $ETCD_VERSION

	tool go.etcd.io/etcd/server/v3
	MOD

	with_progress "resolve kube-apiserver modules" sh -c "cd '$work/kube' && go mod tidy"
	with_progress "resolve etcd modules" sh -c "cd '$work/etcd' && go mod tidy"

	local ld
	ld=$(kube_ldflags "$KUBE_VERSION")
	local tags=selinux,notest,grpcnotrace
	with_progress "build kube-apiserver $KUBE_VERSION (cold: ~9 min on 2 cores)" sh -c \
		"cd '$work/kube' && go build -trimpath $NODWARF -tags $tags -ldflags '$ld' -o '$KUBE_DIR/bin/kube-apiserver' k8s.io/kubernetes/cmd/kube-apiserver"
	with_progress "build kubectl $KUBE_VERSION" sh -c \
		"cd '$work/kube' && go build -trimpath $NODWARF -tags $tags -ldflags '$ld' -o '$KUBE_DIR/bin/kubectl' k8s.io/kubernetes/cmd/kubectl"
	with_progress "build etcd $ETCD_VERSION" sh -c \
		"cd '$work/etcd' && go build -trimpath $NODWARF -ldflags '-s -w' -o '$KUBE_DIR/bin/etcd' go.etcd.io/etcd/server/v3"
	"$KUBE_DIR/bin/kube-apiserver" --version >&2
}

fetch_clickhouse() {
	if [ -f "$CHDB_DIR/libchdb.so" ]; then
		log "ClickHouse engine $CHDB_VERSION cached in $CHDB_DIR"
		return
	fi
	command -v npm >/dev/null || die "npm is needed to fetch the ClickHouse engine: apt-get install -y npm"
	local tmp
	tmp=$(mktemp -d "$CACHE/.chdb.XXXXXX")
	with_progress "fetch $CHDB_PACKAGE@$CHDB_VERSION (178 MB)" sh -c \
		"cd '$tmp' && npm pack --silent '$CHDB_PACKAGE@$CHDB_VERSION' >/dev/null"
	local tgz sum
	tgz=$(ls "$tmp"/*.tgz)
	sum=$(sha1sum "$tgz" | cut -d' ' -f1)
	[ "$sum" = "$CHDB_SHA1" ] || die "checksum mismatch for $tgz: got $sum, want $CHDB_SHA1"
	tar -xzf "$tgz" -C "$tmp" package/libchdb.so
	mkdir -p "$CHDB_DIR"
	mv "$tmp/package/libchdb.so" "$CHDB_DIR/libchdb.so.partial"
	mv "$CHDB_DIR/libchdb.so.partial" "$CHDB_DIR/libchdb.so"
	rm -rf "$tmp"
}

build_dex() {
	if [ -x "$DEX_DIR/bin/dex" ]; then
		log "dex $DEX_VERSION cached in $DEX_DIR/bin"
		return
	fi
	local work="$DEX_DIR/src"
	rm -rf "$work" && mkdir -p "$work" "$DEX_DIR/bin"
	# A module of its own: Dex's dependencies stay out of Gatehouse's go.mod. Without cgo, Dex
	# has no SQLite storage; the tests use its memory storage.
	cat >"$work/go.mod" <<-MOD
	module gatehouse.local/testbed/dex

	go 1.26

	require github.com/dexidp/dex $DEX_VERSION

	tool github.com/dexidp/dex/cmd/dex
	MOD
	with_progress "resolve dex modules" sh -c "cd '$work' && go mod tidy"
	with_progress "build dex $DEX_VERSION (cold: ~4 min on 2 cores)" sh -c \
		"cd '$work' && go build -trimpath $NODWARF -ldflags '-s -w' -o '$DEX_DIR/bin/dex.partial' github.com/dexidp/dex/cmd/dex"
	mv "$DEX_DIR/bin/dex.partial" "$DEX_DIR/bin/dex"
}

# build_helm_module builds the helm CLI of one major version (3 or 4) into dir/bin/helm.
build_helm_module() {
	local major=$1 version=$2 dir=$3
	if [ -x "$dir/bin/helm" ]; then
		log "helm $version cached in $dir/bin"
		return
	fi
	local work="$dir/src" mod="helm.sh/helm/v$major"
	rm -rf "$work" && mkdir -p "$work" "$dir/bin"
	# A scratch module with helm's command as a tool: go mod tidy resolves helm's own pinned
	# dependencies, apart from the project's go.mod.
	cat >"$work/go.mod" <<-MOD
	module gatehouse.local/testbed/helm$major

	go 1.26

	require $mod $version

	tool $mod/cmd/helm
	MOD
	with_progress "resolve helm $version modules" sh -c "cd '$work' && go mod tidy"
	# Stamped as helm's own release build does, so `helm version` names the release.
	local ld="-s -w -X $mod/internal/version.version=$version -X $mod/internal/version.gitTreeState=clean"
	with_progress "build helm $version (cold: ~4 min on 2 cores)" sh -c \
		"cd '$work' && go build -trimpath $NODWARF -ldflags '$ld' -o '$dir/bin/helm.partial' $mod/cmd/helm"
	mv "$dir/bin/helm.partial" "$dir/bin/helm"
	"$dir/bin/helm" version >&2
}

# build_kubectl builds one older kubectl release (only kubectl: its API server is never run).
build_kubectl() {
	local version=$1 dir
	dir=$(kubectl_dir "$version")
	if [ -x "$dir/bin/kubectl" ]; then
		log "kubectl $version cached in $dir/bin"
		return
	fi
	local work="$dir/src" ld
	rm -rf "$work" && mkdir -p "$work" "$dir/bin"
	kube_module "$version" "$work" k8s.io/kubernetes/cmd/kubectl
	with_progress "resolve kubectl $version modules" sh -c "cd '$work' && go mod tidy"
	ld=$(kube_ldflags "$version")
	with_progress "build kubectl $version (cold: ~3 min on 2 cores, 2.5 CPU-min)" sh -c \
		"cd '$work' && go build -trimpath $NODWARF -tags selinux,notest,grpcnotrace -ldflags '$ld' -o '$dir/bin/kubectl.partial' k8s.io/kubernetes/cmd/kubectl"
	mv "$dir/bin/kubectl.partial" "$dir/bin/kubectl"
	"$dir/bin/kubectl" version --client --output=yaml >&2
}

# build_kubectls builds the releases of KUBECTL_RELEASES whose minor the machine does not carry
# (MACHINE_KUBECTLS): the tests would drive the machine's in their place (kubectl_releases).
build_kubectls() {
	local v machine
	for v in $KUBECTL_RELEASES; do
		machine="$MACHINE_KUBECTLS/kubectl.1.$(echo "$v" | cut -d. -f2)"
		if [ -x "$machine" ]; then
			log "kubectl $v: not built, the machine carries $machine"
			continue
		fi
		build_kubectl "$v"
	done
}

# kubectl_releases prints the older kubectl releases the tests drive, colon-separated: the built
# ones and the machine's, one per minor, the machine's where both have a minor.
kubectl_releases() {
	local -A by_minor=()
	local v f minor list=""
	for v in $KUBECTL_RELEASES; do
		minor=$(echo "$v" | cut -d. -f2)
		by_minor[$minor]="$(kubectl_dir "$v")/bin/kubectl"
	done
	for f in "$MACHINE_KUBECTLS"/kubectl.1.*; do
		[ -x "$f" ] || continue
		minor=${f##*/kubectl.1.}
		minor=${minor%%.*}
		by_minor[$minor]=$f
	done
	for minor in $(printf '%s\n' "${!by_minor[@]}" | sort -n); do
		list="$list${list:+:}${by_minor[$minor]}"
	done
	echo "$list"
}

build_helm() { build_helm_module 4 "$HELM_VERSION" "$HELM_DIR"; }
build_helm3() { build_helm_module 3 "$HELM3_VERSION" "$HELM3_DIR"; }

print_env() {
	echo "export KUBEBUILDER_ASSETS='$KUBE_DIR/bin'"
	echo "export GATEHOUSE_LIBCHDB='$CHDB_DIR/libchdb.so'"
	echo "export GATEHOUSE_DEX='$DEX_DIR/bin/dex'"
	echo "export GATEHOUSE_HELM='$HELM_DIR/bin/helm'"
	echo "export GATEHOUSE_HELM3='$HELM3_DIR/bin/helm'"
	echo "export GATEHOUSE_KUBECTL_RELEASES='$(kubectl_releases)'"
}

locked() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	"$@"
}

case "${1:-all}" in
kube) locked build_kube ;;
clickhouse) locked fetch_clickhouse ;;
dex) locked build_dex ;;
helm) locked build_helm ;;
helm3) locked build_helm3 ;;
kubectls) locked build_kubectls ;;
all) locked build_kube; fetch_clickhouse; build_dex; build_helm; build_helm3; build_kubectls ;;
env) print_env ;;
*) die "usage: $0 [all|kube|clickhouse|dex|helm|helm3|kubectls|env]" ;;
esac
