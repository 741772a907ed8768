#!/usr/bin/env python3
# persym.py ZERO.data RATE0 SUBS.data RATE1 [ZERO2 RATE SUBS2 RATE ...]: perf samples per
# 1000 appends (3 s windows, appends = rate*3), total and the feed's functions, for each
# (zero, subs) pair; prints the diff.
import subprocess, sys, collections
def load(f, rate):
    out = subprocess.run(["perf","report","-i",f,"--no-children","--sort","comm,dso,sym","-n","--stdio"],capture_output=True,text=True).stdout
    d = collections.Counter()
    for l in out.splitlines():
        if l.startswith("#") or not l.strip(): continue
        p = l.split()
        try: n = int(p[1])
        except: continue
        if p[2].startswith("rocksdb:"): continue  # flushes: lumpy, not the feed
        key = " ".join(p[3:])[:100]  # without the thread's name (A and B name them differently)
        d[key] += n / (rate*3) * 1000
    return d
args = sys.argv[1:]
pairs = [(args[i], float(args[i+1]), args[i+2], float(args[i+3])) for i in range(0, len(args), 4)]
res = []
for z, rz, s, rs in pairs:
    a, b = load(z, rz), load(s, rs)
    res.append((a, b))
    print(f"{z}: {sum(a.values()):.0f}  {s}: {sum(b.values()):.0f}  diff {sum(b.values())-sum(a.values()):.0f} samples/1000 appends")
keys = set()
for a, b in res: keys |= set(a) | set(b)
rows = sorted(keys, key=lambda k: -max(abs(b[k]-a[k]) for a, b in res))
for k in rows[:int(os_env) if (os_env:=__import__('os').environ.get('TOP')) else 30]:
    print("  ".join(f"{b[k]-a[k]:7.2f}" for a, b in res), " ", k)
