#!/usr/bin/env python3
"""Where a bench run's CPU goes, every 0.25 s: the machine's busy share, tansu, and the bench
process's threads (librdkafka's `rdk:*` threads summed as `rdk`), in % of one core, read from
/proc. Used for the README's per-message CPU figures of the Kafka path:

    python3 scripts/cpu-split.py /tmp/cpu.txt &   # then, in the same shell:
    bash scripts/bench.sh --phases kafka --runs 1 --kafka-events 3000000; kill %1

Each line: seconds since start, busy %, then the six busiest of those. /proc counts in clock
ticks (100 a second), so a figure moves in steps of 4 %.
"""
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
STEP = 0.25


def machine():
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


def threads():
    ticks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            if comm != "tansu" and not comm.startswith("pipeline"):
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                ticks[(comm, tid, name)] = int(fields[11]) + int(fields[12])
        except OSError:
            continue  # a thread or process that ended meanwhile
    return ticks


def group(comm, name):
    if comm == "tansu":
        return "tansu"
    return "rdk" if name.startswith("rdk:") else name


def main(path):
    out = open(path, "w")
    (all0, idle0), before, start = machine(), threads(), time.time()
    while True:
        time.sleep(STEP)
        (all1, idle1), now = machine(), threads()
        busy = 100 * (1 - (idle1 - idle0) / (all1 - all0)) if all1 > all0 else 0.0
        shares = {}
        for key, t in now.items():
            g = group(key[0], key[2])
            shares[g] = shares.get(g, 0) + t - before.get(key, t)
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:6]
        parts = " ".join(f"{g}={100 * t / (STEP * HZ):.0f}%" for g, t in top if t > 0)
        out.write(f"{time.time() - start:7.2f} busy={busy:5.1f}% {parts}\n")
        out.flush()
        all0, idle0, before = all1, idle1, now


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/dev/stdout")
