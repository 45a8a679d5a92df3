#!/bin/sh
# The image the crates were judged against: 8 directories whose files land in different
# allocation groups (4 AGs), and a 3,500-entry directory (a B+tree directory).
# Usage: make-image.sh DIR   (then: cargo run --release -- DIR/j.img DIR/tree)
set -e
cd "$1"
rm -rf tree && mkdir tree
python3 - <<'PY'
import os, random
random.seed(1)
root = 'tree'
lines = ['boot', '0 0', 'd--755 0 0']
for d in range(8):
    lines.append(f'd{d} d--755 0 0')
    os.makedirs(f'{root}/d{d}', exist_ok=True)
    for i, sz in enumerate([10, 5000, 70000, 3_000_000]):
        p = f'{root}/d{d}/f{i}'
        with open(p, 'wb') as f:
            f.write(bytes(random.getrandbits(8) for _ in range(min(sz, 4096))) * (sz // 4096 + 1))
        os.truncate(p, sz)
        lines.append(f' f{i} ---644 0 0 {os.path.abspath(p)}')
    lines.append(' $')
lines.append('big d--755 0 0')
os.makedirs(f'{root}/big', exist_ok=True)
for i in range(3500):
    p = f'{root}/big/entry-with-a-longish-name-{i:05}'
    open(p, 'wb').write(f'{i}\n'.encode())
    lines.append(f' entry-with-a-longish-name-{i:05} ---644 0 0 {os.path.abspath(p)}')
lines.append(' $')
lines.append('$')
open('proto', 'w').write('\n'.join(lines) + '\n')
PY
rm -f j.img
mkfs.xfs -q -p proto -d file,name=j.img,size=300m,agcount=4
