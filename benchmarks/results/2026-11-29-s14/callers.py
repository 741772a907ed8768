#!/usr/bin/env python3
# callers.py PERF_SCRIPT_TXT THREAD FUNC[,FUNC...]: from `perf script -F comm,ip,sym` of a
# DWARF call-graph recording, the samples of THREAD
# (e.g. io-worker, change-feed) whose stack holds each FUNC (inclusive), and for the
# first FUNC what it spent its samples on (the frames just above it). The recording:
#   PERF_OPTS="-F 4000 --call-graph dwarf,32768" PERF_SECS=1.5 ../2026-11-29-s13/feedperf.sh
#   perf script -F comm,ip,sym -i /tmp/perfB1000.data > s.txt
import sys, collections
path, thread, names = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
inclusive, under = collections.Counter(), collections.Counter()
total = 0
def flush(comm, stack):
    global total
    if comm != thread or not stack: return
    total += 1
    for n in names:
        if any(n in f for f in stack): inclusive[n] += 1
    for i, f in enumerate(stack):
        if names[0] in f:
            under[' <- '.join(x[:50] for x in stack[max(0, i - 2):i][::-1]) or '(itself)'] += 1
            break
comm, stack = None, []
for line in open(path):
    if not line.strip():
        flush(comm, stack); stack = []; continue
    if not line.startswith((' ', '\t')):
        comm, stack = line.split()[0], []; continue
    p = line.strip().split(None, 1)
    stack.append(p[1] if len(p) > 1 else '?')
flush(comm, stack)
print(f'{thread}: {total} samples')
for n in names: print(f'{inclusive[n]:6d} {100 * inclusive[n] / max(total, 1):5.1f}%  {n}')
print(f'under {names[0]}:')
for k, v in under.most_common(10): print(f'{v:6d}  {k}')
