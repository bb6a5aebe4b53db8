"""Executed lock-prefixed instructions (x86 atomic read-modify-writes: `lock xadd`, `lock inc`,
`lock cmpxchg`, ...; plus `xchg` with memory, which is implicitly locked) in the bench binary,
from a `valgrind --tool=callgrind --dump-instr=yes` profile and the binary's disassembly
(`objdump -d`). Used by `benches/instructions.sh metrics`.

    python3 benches/locked.py <callgrind.out> <bench binary>
"""
import re, subprocess, sys
prof, binary = sys.argv[1], sys.argv[2]
counts = {}
ob_names = {}
ob = fn_ob = None
addr = 0
skip_next = False
for line in open(prof):
    line = line.rstrip('\n')
    m = re.match(r'^(c?)ob=\((\d+)\)(?: (.*))?$', line)
    if m:
        if m.group(3): ob_names[m.group(2)] = m.group(3)
        if not m.group(1): ob = ob_names.get(m.group(2))
        continue
    if line.startswith('calls='):
        skip_next = True; continue
    m = re.match(r'^(0x[0-9a-f]+|\+\d+|-\d+|\*)\s+\S+\s+(\d+)$', line)
    if not m: continue
    a = m.group(1)
    if a.startswith('0x'): addr = int(a, 16)
    elif a[0] == '+': addr += int(a[1:])
    elif a[0] == '-': addr -= int(a[1:])
    if skip_next:
        skip_next = False; continue
    if ob and ob.endswith(binary.split('/')[-1]):
        counts[addr] = counts.get(addr, 0) + int(m.group(2))
dis = subprocess.run(['objdump', '-d', '--no-show-raw-insn', binary], capture_output=True, text=True).stdout
total = 0
for l in dis.splitlines():
    p = l.split(':', 1)
    if len(p) != 2: continue
    try: a = int(p[0].strip(), 16)
    except ValueError: continue
    ins = p[1].split()
    if not ins or a not in counts: continue
    if ins[0] == 'lock' or (ins[0] == 'xchg' and '(' in p[1]):
        total += counts[a]
print(total)
