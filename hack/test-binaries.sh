#!/usr/bin/env bash
# Builds the real Kubernetes test binaries (etcd, kube-apiserver, kubectl, helm)
# from the pinned Go modules under hack/tools/, once per machine, and links them
# into ./bin for tests/servers/. A cached binary is reused as long as its
# version and its module's go.sum are unchanged, so only the first run builds.
#
#   hack/test-binaries.sh            build what is missing, link ./bin
#   hack/test-binaries.sh --check    exit 1 if anything would be built
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tools="$repo/hack/tools"
cache="${LLM_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-infra}/bin"
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

# The tools modules pin everything; never let a go.work or GOFLAGS from the
# environment change what gets built. CGO is not needed by any of the four.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

version_of() { (cd "$tools/$1" && go list -m -f '{{.Version}}' "$2"); }

# One line per 100 compiled packages: a cold kube-apiserver build compiles
# ~2,500 of them, and CI logs need a sign of life, not every package name.
progress() {
  local name=$1 start=$SECONDS n=0
  while IFS= read -r line; do
    case $line in
      "# "*|*.go:[0-9]*|"go: "*) printf '%s\n' "$line" ;;  # diagnostics, not package names
      *) n=$((n + 1)); if [ $((n % 100)) -eq 0 ]; then
           printf '  [%s] %d packages compiled, %ds\n' "$name" "$n" $((SECONDS - start)); fi ;;
    esac
  done
}

# build NAME MODULE_DIR MAIN_PACKAGE VERSION LDFLAGS
build() {
  local name=$1 dir=$2 pkg=$3 version=$4 ldflags=$5
  local sum; sum=$(sha256sum "$tools/$dir/go.sum" | cut -c1-12)
  local dest="$cache/$name-$version-$sum/$name"
  if [ ! -x "$dest" ]; then
    if $check_only; then echo "missing: $name $version"; return 1; fi
    echo "==> building $name $version (first run on this machine; cached in $(dirname "$dest"))"
    local start=$SECONDS tmp; mkdir -p "$(dirname "$dest")"; tmp=$(mktemp "$dest.XXXX")
    (cd "$tools/$dir" && go build -v -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") 2>&1 | progress "$name"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { rm -f "$tmp"; echo "build of $name failed" >&2; return 1; }
    mv "$tmp" "$dest"   # atomic: a half-written binary is never mistaken for a cached one
    echo "==> $name built in $((SECONDS - start))s"
  fi
  mkdir -p "$repo/bin"
  ln -sfn "$dest" "$repo/bin/$name"
}

kube=$(version_of kube k8s.io/kubernetes)
etcd=$(version_of etcd go.etcd.io/etcd/server/v3)
helm=$(version_of helm helm.sh/helm/v3)
minor=$(echo "$kube" | cut -d. -f2)

# Without these the binaries report v0.0.0-master, which breaks helm's
# kubeVersion checks and kubectl's skew warning (same -X vars as hack/lib/version.sh).
kube_ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ld="$kube_ld -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
helm_ld="-s -w -X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

build etcd etcd go.etcd.io/etcd/server/v3 "$etcd" "-s -w"
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver "$kube" "$kube_ld"
build kubectl kube k8s.io/kubernetes/cmd/kubectl "$kube" "$kube_ld"
build helm helm helm.sh/helm/v3/cmd/helm "$helm" "$helm_ld"
$check_only || echo "==> test binaries ready in bin/: etcd $etcd, kube-apiserver/kubectl $kube, helm $helm"
