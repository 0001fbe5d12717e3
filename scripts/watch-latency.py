#!/usr/bin/env python3
"""Write -> visible latency between two paired devices, both under `candor sync --watch`.

Usage: scripts/watch-latency.py HOME_A HOME_B [SAMPLES]

HOME_A and HOME_B must be paired homes with a relay running (see README). Each sample runs
`candor --home HOME_A log add ...` (forwarded to A's watcher, which pushes at once) and waits for
B's watcher to print a `pulled 1` line. The figure includes starting the `candor log add`
process (reported separately). Uses target/release/candor.
"""
import queue, statistics, subprocess, sys, threading, time
from pathlib import Path

CANDOR = str(Path(__file__).resolve().parent.parent / "target" / "release" / "candor")

def main() -> None:
    home_a, home_b = sys.argv[1], sys.argv[2]
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    watch_a = subprocess.Popen([CANDOR, "--home", home_a, "sync", "--watch"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watch_b = subprocess.Popen([CANDOR, "--home", home_b, "sync", "--watch"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: "queue.Queue[tuple[float, str]]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put((time.perf_counter(), l.strip())) for l in watch_b.stdout],
                     daemon=True).start()
    threading.Thread(target=lambda: [None for _ in watch_a.stdout], daemon=True).start()
    time.sleep(2)  # let both watchers connect and finish their first round
    while not lines.empty():
        lines.get()
    latency, spawn = [], []
    try:
        for i in range(samples):
            start = time.perf_counter()
            subprocess.run([CANDOR, "--home", home_a, "log", "add", f"latency probe {i}"],
                           stdout=subprocess.DEVNULL, check=True)
            written = time.perf_counter()
            while True:
                at, line = lines.get(timeout=10)
                if "pulled 1" in line:
                    break
            latency.append((at - start) * 1000)
            spawn.append((written - start) * 1000)
            time.sleep(0.05)
    finally:
        watch_a.terminate()
        watch_b.terminate()
    latency.sort()
    print(f"write -> visible: p50 {statistics.median(latency):.1f} ms, "
          f"p90 {latency[int(len(latency) * 0.9)]:.1f} ms, max {latency[-1]:.1f} ms "
          f"({samples} samples; the `candor log add` process itself: p50 {statistics.median(spawn):.1f} ms)")

if __name__ == "__main__":
    main()
