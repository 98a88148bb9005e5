#!/usr/bin/env python3
"""Build an OCI image-layout tarball from a static busybox binary (python3 stdlib only).

The image holds one layer: /bin/busybox plus applet symlinks (/bin/sh, /bin/sleep, /bin/cat, ...)
and the usual empty mount points. The index is annotated with the image name so that
`ctr -n k8s.io images import` tags it. No registry is needed: the integration tests build both the
workload image and the sandbox ("pause") image this way.

Usage:
  build-image.py --name resizelet.test/busybox:1 --out busybox.tar [--busybox /bin/busybox]
                 [--entrypoint '["/bin/sh","-c","..."]'] [--cmd '[...]']
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

APPLETS = [
    "sh", "sleep", "cat", "ls", "echo", "true", "false", "ps", "kill", "mkdir", "rm", "env",
    "grep", "head", "tail", "wc", "id", "date", "touch", "test", "[", "printf", "dd", "yes",
]
DIRS = ["bin", "dev", "etc", "proc", "sys", "tmp", "var", "root", "run"]
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def build_layer(busybox_path: str) -> bytes:
    with open(busybox_path, "rb") as f:
        busybox = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in DIRS:
            mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(tar_info(d + "/", tarfile.DIRTYPE, mode))
        tar.addfile(tar_info("bin/busybox", tarfile.REGTYPE, 0o755, len(busybox)), io.BytesIO(busybox))
        for applet in APPLETS:
            tar.addfile(tar_info("bin/" + applet, tarfile.SYMTYPE, 0o777, linkname="busybox"))
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        group = b"root:x:0:\nnogroup:x:65534:\n"
        for name, data in (("etc/passwd", passwd), ("etc/group", group)):
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buf.getvalue()


def json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="image reference, e.g. resizelet.test/busybox:1")
    p.add_argument("--out", required=True, help="output tarball (OCI image layout)")
    p.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    p.add_argument("--entrypoint", default='["/bin/sh"]', help="JSON list")
    p.add_argument("--cmd", default="[]", help="JSON list")
    args = p.parse_args()

    if not os.path.isfile(args.busybox):
        print(f"build-image: {args.busybox} does not exist (install busybox-static)", file=sys.stderr)
        return 1
    arch = GOARCH.get(platform.machine())
    if arch is None:
        print(f"build-image: unknown machine {platform.machine()}", file=sys.stderr)
        return 1

    layer_tar = build_layer(args.busybox)
    layer_gz = gzip.compress(layer_tar, mtime=0)
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": json.loads(args.entrypoint),
            "Cmd": json.loads(args.cmd) or None,
            "Env": ["PATH=/bin"],
            "WorkingDir": "/",
            # a distinct config (and image ID) per name: two names on one image ID confuse
            # containerd 1.6's CRI image store, which then briefly loses one of the names
            "Labels": {"dev.resizelet.test.image": args.name},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created_by": "resizelet scripts/build-image.py"}],
    }
    config_bytes = json_bytes(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer_gz), "size": len(layer_gz)}],
    }
    manifest_bytes = json_bytes(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": args.name,
                "org.opencontainers.image.ref.name": args.name,
            },
        }],
    }

    blobs = [layer_gz, config_bytes, manifest_bytes]
    with tarfile.open(args.out, "w") as out:
        def add(name: str, data: bytes, kind=tarfile.REGTYPE, mode=0o644):
            out.addfile(tar_info(name, kind, mode, len(data)), io.BytesIO(data))
        add("oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"}))
        add("index.json", json_bytes(index))
        out.addfile(tar_info("blobs/", tarfile.DIRTYPE, 0o755))
        out.addfile(tar_info("blobs/sha256/", tarfile.DIRTYPE, 0o755))
        for blob in blobs:
            add("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
    print(f"build-image: {args.name} -> {args.out} ({sha256(manifest_bytes)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
