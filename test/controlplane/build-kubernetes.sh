#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) from Debian's source package
# into a cache folder, and makes sure etcd is installed. Called by binaries.ts under a lock; safe to
# run by hand. Usage: build-kubernetes.sh CACHE_DIR
#
# Why from source: no container engine and no download other than Debian/npm here, and Debian ships
# only kubectl from this source package. See ../shared/CONTROLPLANE.md for the facts this follows.
set -euo pipefail
cache=${1:?usage: build-kubernetes.sh CACHE_DIR}
step() { printf '[kubeplug controlplane] %s\n' "$*" >&2; }
# Run under a lock by binaries.ts: a concurrent first run waits here, then finds the finished cache.
if [ -f "$cache/.complete" ]; then step "cache is complete: $cache"; exit 0; fi

packages=(etcd-server golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev unzip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
src_file=/etc/apt/sources.list.d/kubeplug-deb-src.sources
need_src=1
if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ || grep -qs '^deb-src' /etc/apt/sources.list; then need_src=0; fi

if [ "${#missing[@]}" -gt 0 ] || [ "$need_src" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    step "missing Debian packages: ${missing[*]:-none}; deb-src entry needed: $([ $need_src = 1 ] && echo yes || echo no)"
    step "run as root:  sudo bash $0 $cache   (or point KUBEBUILDER_ASSETS at a folder with etcd and kube-apiserver)"
    exit 3
  fi
  if [ "$need_src" = 1 ]; then
    step "adding a deb-src entry ($src_file)"
    # The first stanza of debian.sources, with Types: deb-src (a .list line would clash on Signed-By).
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1{sub(/Types: deb/,"Types: deb-src"); print}' \
      /etc/apt/sources.list.d/debian.sources > "$src_file"
  fi
  step "apt-get update"
  apt-get update -q >&2
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
fi

work="$cache/build"
rm -rf "$work"; mkdir -p "$work"
cd "$work"
step "downloading Debian's kubernetes source package (about 34 MB)"
apt-get source --download-only kubernetes >&2
orig=$(ls kubernetes_*.orig.tar.* | head -n1)
step "extracting $orig"
mkdir src && tar -xf "$orig" -C src --strip-components=1
cd src
# Kubernetes 1.20 vendors reflect2 1.0.1, which breaks under Go >= 1.18: kube-apiserver segfaults on
# the first custom resource. Debian's 1.0.2 fixes it.
step "replacing vendored reflect2 with Debian's 1.0.2 (fix for Go >= 1.18)"
r2=vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
export GOPATH=$PWD/.go CGO_ENABLED=0 HOME=${HOME:-$work} GOCACHE=$work/.gocache
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
step "building kube-apiserver and kube-controller-manager (about 4-8 minutes on 2 cores)"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
step "building sample-controller (the Go baseline for benchmarks)"
(cd .go/src/k8s.io/kubernetes && GO111MODULE=off GOFLAGS= go build -o "$work/sample-controller" ./vendor/k8s.io/sample-controller) >&2
mkdir -p "$cache/bin" "$cache/sample-controller"
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$cache/bin/"
cp "$work/sample-controller" "$cache/bin/"
cp -r vendor/k8s.io/sample-controller/artifacts/examples/. "$cache/sample-controller/"
ln -sfn "$(command -v etcd)" "$cache/bin/etcd"
cd "$cache"
rm -rf "$work"
# The stamp is written last: a cache without it is partial and gets rebuilt.
echo "kubernetes-1.20.2 built $(date -u +%FT%TZ)" > "$cache/.complete"
step "done: $cache/bin"
