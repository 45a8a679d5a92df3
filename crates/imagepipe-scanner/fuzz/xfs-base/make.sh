#!/usr/bin/env bash
# Makes the base images of the `xfs` fuzz target with xfsprogs' mkfs.xfs and a protofile (no
# mounting): a v5 and a v4 (ftype off) filesystem of 16 MiB holding short-form (etc), block
# (block, 40 entries), leaf (leaf, 300) and node (node, 700) directories, a file of several
# blocks, and a link. The 16 MiB are allowed below mkfs.xfs's 300 MB floor the way fstests
# does (TEST_DIR, TEST_DEV, QA_CHECK_FS).
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p tree/etc tree/block tree/leaf tree/node
echo 'ID=fuzz' > tree/etc/os-release
for i in $(seq 1 40); do echo "$i" > "tree/block/file-with-a-longer-name-$i"; done
for i in $(seq 1 300); do : > "tree/leaf/entry-name-number-$i"; done
for i in $(seq 1 700); do : > "tree/node/entry-name-number-for-node-form-$i"; done
seq 1 8000 > tree/data
ln -s etc/os-release tree/link
{
  printf '/dev/null\n0 0\nd--755 0 0\n'
  python3 - <<'PY'
import os
def walk(d, depth):
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n); ind = ' ' * (depth + 1)
        if os.path.islink(p): print(f"{ind}{n} l--777 0 0 {os.readlink(p)}")
        elif os.path.isdir(p):
            print(f"{ind}{n} d--755 0 0"); walk(p, depth + 1); print(f"{ind}$")
        else: print(f"{ind}{n} ---644 0 0 {os.path.abspath(p)}")
walk('tree', 0)
print('$')
PY
} > proto
for v in v5 v4; do
  extra=()
  [ "$v" = v4 ] && extra=(-m crc=0 -n ftype=0)
  TEST_DIR=/tmp TEST_DEV=/dev/null QA_CHECK_FS=1 \
    mkfs.xfs -q -p proto -d "file,name=$v.img,size=16m" "${extra[@]}" 2>/dev/null
  gzip -9nc "$v.img" > "$out/$v.img.gz"
done
