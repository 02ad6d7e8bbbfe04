#!/usr/bin/env bash
# Builds sample-controller (the Go baseline) from the same Debian kubernetes source as the control
# plane, with a small documented patch: SAMPLE_CONTROLLER_QPS / SAMPLE_CONTROLLER_WORKERS override
# client-go's default client rate limit (5 qps, burst 10) and the 2 workers. Unset, the binary
# behaves exactly as shipped. Usage: build-sample-controller.sh CACHE_DIR (the control plane's).
set -euo pipefail
cache=${1:?usage: build-sample-controller.sh CACHE_DIR}
out="$cache/bin/sample-controller-tunable"
step() { printf '[kubeplug bench] %s\n' "$*" >&2; }
if [ -x "$out" ]; then exit 0; fi
work="$cache/sample-build"
rm -rf "$work"; mkdir -p "$work"; cd "$work"
step "downloading Debian's kubernetes source package"
apt-get source --download-only kubernetes >&2 2>/dev/null || { step "apt-get source failed: run the control-plane build first (it adds the deb-src entry)"; exit 3; }
mkdir src && tar -xf kubernetes_*.orig.tar.* -C src --strip-components=1 \
  --wildcards '*/vendor/*' '*/staging/src/k8s.io/sample-controller/*' '*/staging/src/k8s.io/client-go/*' \
  '*/staging/src/k8s.io/apimachinery/*' '*/staging/src/k8s.io/api/*' '*/staging/src/k8s.io/code-generator/*' 2>/dev/null || \
  tar -xf kubernetes_*.orig.tar.* -C src --strip-components=1
cd src
r2=vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
main=staging/src/k8s.io/sample-controller/main.go
step "patching $main (env-tunable QPS/Burst and workers)"
perl -0pi -e 's/(cfg, err := clientcmd\.BuildConfigFromFlags\(masterURL, kubeconfig\)\n\tif err != nil \{\n\t\tklog\.Fatalf\([^\n]*\n\t\})/$1\n\tif q, err := strconv.ParseFloat(os.Getenv("SAMPLE_CONTROLLER_QPS"), 32); err == nil \&\& q > 0 {\n\t\tcfg.QPS = float32(q)\n\t\tcfg.Burst = int(q) * 2\n\t}/' "$main"
perl -0pi -e 's/controller\.Run\(2, stopCh\)/controller.Run(workers(), stopCh)/' "$main"
cat >> "$main" <<'GO'

// workers is 2 (as shipped) unless SAMPLE_CONTROLLER_WORKERS says otherwise (kubeplug benchmark patch).
func workers() int {
	if n, err := strconv.Atoi(os.Getenv("SAMPLE_CONTROLLER_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 2
}
GO
perl -0pi -e 's/import \(\n/import (\n\t"os"\n\t"strconv"\n/' "$main"
grep -q 'SAMPLE_CONTROLLER_QPS' "$main" || { step "patch did not apply"; exit 1; }
export GOPATH=$PWD/.go CGO_ENABLED=0 GOCACHE=$work/.gocache HOME=${HOME:-$work}
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
step "building sample-controller-tunable (about 40 s)"
(cd .go/src/k8s.io/kubernetes && GO111MODULE=off go build -o "$out.tmp" ./vendor/k8s.io/sample-controller) >&2
mv "$out.tmp" "$out"
cd "$cache"; rm -rf "$work"
step "done: $out"
