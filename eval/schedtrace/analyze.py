#!/usr/bin/env python3
"""analyze.py OUTDIR: where the measured client's and laked's time went in
a trace recorded by capture.sh (docs/RELIABILITY.md, "Where the tail
goes").

Reads OUTDIR/trace.txt (tracefs text: sched_switch and sched_wakeup with
record-tgid) and OUTDIR/pids (laked=, burst=, client= process ids) and
prints:
  - each CPU's time by process group (laked, the bursting clients, the
    measured client, other, idle);
  - laked's busiest thread (the poller under load): how often and how
    long it was off its CPU while runnable (preempted: prev_state R) and
    while asleep;
  - the measured client's gaps of more than 20 us with no client thread
    on a CPU: preempted while runnable, or asleep; an asleep gap splits
    into waiting for its wake-up (laked's answer) and waiting for a CPU
    after it (run queue), with what ran on the CPU it was woken onto.
"""
import bisect
import collections
import re
import sys

LINE = re.compile(r'^\s*.+?-(\d+)\s+\(\s*(\S+)\)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (sched_switch|sched_wakeup): (.*)$')
FIELD = re.compile(r'(\w+)=(\S+)')


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def summary(vals):
    if not vals:
        return 'none'
    v = sorted(vals)
    return 'n %d, sum %.0f us, p50 %.0f, p90 %.0f, p99 %.0f, max %.0f us' % (
        len(v), sum(v), pct(v, .5), pct(v, .9), pct(v, .99), v[-1])


def main(d):
    pids = dict(kv.split('=') for kv in open(d + '/pids').read().split())
    group = {pids['laked']: 'laked', pids['burst']: 'burst', pids['client']: 'client'}
    tgid, events = {}, []
    for line in open(d + '/trace.txt'):
        m = LINE.match(line)
        if not m:
            continue
        pid, tg, cpu, ts, name, rest = m.groups()
        tgid[pid] = tg
        events.append((float(ts) * 1e6, int(cpu), name, dict(FIELD.findall(rest)), pid))

    def who(pid):
        if pid == '0':
            return 'idle'
        return group.get(tgid.get(pid), 'other')

    # Segments: (cpu, start, end, pid, state the thread left in).
    # A thread that runs through the whole window without switching (a
    # spinning client) shows up only in the switches around it: the
    # first switch on a CPU ends a segment that began with the window,
    # and the thread switched in last runs to the window's end.
    if not events:
        sys.exit('analyze.py: no events in %s/trace.txt' % d)
    # Every line names the thread on its CPU when it was written; some
    # switches out of the idle thread are missing from the traces of this
    # VM, so a line whose thread is not the one the last switch put there
    # closes that one's segment at the CPU's previous line.
    t0, t1 = events[0][0], events[-1][0]
    segs, running, last = [], {}, {}
    wakes = collections.defaultdict(list)  # pid -> [(ts, target cpu)]
    for ts, cpu, name, f, cur in events:
        if cpu in running and running[cpu][0] != cur:
            pid, start = running[cpu]
            segs.append((cpu, start, last[cpu], pid, 'unseen'))
            running[cpu] = (cur, last[cpu])
        last[cpu] = ts
        if name == 'sched_switch':
            pid, start = running.get(cpu, (f['prev_pid'], t0))
            segs.append((cpu, start, ts, pid, f['prev_state']))
            running[cpu] = (f['next_pid'], ts)
        else:
            wakes[f['pid']].append((ts, int(f['target_cpu'])))
    for cpu, (pid, start) in running.items():
        segs.append((cpu, start, t1, pid, 'end'))
    span = t1 - t0
    print('window %.0f us' % span)
    share = collections.Counter()
    for cpu, s, e, pid, _ in segs:
        share[(cpu, who(pid))] += e - s
    for (cpu, g), v in sorted(share.items()):
        print('  cpu %d %-6s %5.1f %%' % (cpu, g, 100 * v / span))

    def gaps(mine):
        ss = sorted(mine)
        out = collections.defaultdict(list)
        for (s0, e0, st, c0), (s1, _, _, _) in zip(ss, ss[1:]):
            out['R' if st.startswith('R') else 'S'].append((s1 - e0, e0, c0))
        return out

    # laked's busiest thread.
    busy = collections.Counter()
    for cpu, s, e, pid, _ in segs:
        if who(pid) == 'laked':
            busy[pid] += e - s
    if busy:
        poller, on = busy.most_common(1)[0]
        g = gaps([(s, e, st, cpu) for cpu, s, e, pid, st in segs if pid == poller])
        print('laked busiest thread %s: on a CPU %.1f %% of the window' % (poller, 100 * on / span))
        print('  preempted (runnable, off CPU): %s' % summary([x[0] for x in g['R']]))
        print('  asleep:                        %s' % summary([x[0] for x in g['S']]))

    # The measured client, all its threads together.
    client = sorted((s, e, st, cpu) for cpu, s, e, pid, st in segs if who(pid) == 'client')
    cg = []
    for (s0, e0, st, c0), (s1, _, _, _) in zip(client, client[1:]):
        if s1 - e0 > 20:
            cg.append((s1 - e0, e0, 'R' if st.startswith('R') else 'S', c0))
    on = sum(e - s for s, e, _, _ in client)
    print('measured client: on a CPU %.1f %% of the window; gaps > 20 us with no client thread on a CPU:' % (100 * on / span))
    print('  preempted: %s' % summary([g for g, _, st, _ in cg if st == 'R']))
    cw = sorted((ts, cpu) for pid, l in wakes.items() if who(pid) == 'client' for ts, cpu in l)
    cwt = [w[0] for w in cw]
    wait_wake, wait_cpu, beside = [], [], collections.Counter()
    for g, e0, st, _ in cg:
        if st != 'S':
            continue
        i = bisect.bisect_right(cwt, e0)
        if i == len(cw) or cw[i][0] >= e0 + g:
            continue
        w, target = cw[i]
        wait_wake.append(w - e0)
        wait_cpu.append(e0 + g - w)
        for cpu, s, e, pid, _ in segs:
            if cpu == target and e > w and s < e0 + g:
                beside[who(pid)] += min(e, e0 + g) - max(s, w)
    print('  asleep:    %s' % summary([g for g, _, st, _ in cg if st == 'S']))
    print('    of which waiting for its wake-up:      %s' % summary(wait_wake))
    print('    of which woken, waiting for a CPU:     %s' % summary(wait_cpu))
    print('    while it waited, its CPU ran: ' + ', '.join('%s %.0f us' % kv for kv in beside.most_common()))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: analyze.py OUTDIR (written by capture.sh)')
    main(sys.argv[1])
