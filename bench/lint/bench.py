"""Driver of bench/lint/run: builds the estate (targets, rules, server), then times `tocsin lint`."""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

BIN = os.path.abspath(sys.argv[1])
RUNS = int(os.environ.get("RUNS", "5"))
TARGETS, SERIES = 100, 1000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def wait(what, pred, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(1)
    sys.exit(f"timed out waiting for {what}")


def rules_yaml(targets):
    """1,000 rules in 20 groups, shaped like a real estate: threshold alerts with `for`, rates,
    joins on `instance`, recording rules, a few `absent()` alerts; selectors shared between rules
    as they are in practice. Threshold and join alerts name one instance (about 600 distinct
    selectors, one series each); rate and recording rules select a device on every target (800
    series each)."""
    out = ["groups:"]
    for g in range(20):
        out += [f"  - name: group-{g}", "    rules:"]
        for r in range(50):
            i = g * 50 + r
            dev, mode = f"d0_{i % 15}", f"m{i % 8}"
            inst = targets[i % len(targets)]
            kind = i % 5
            if kind == 0:
                out += [f"      - alert: MemHigh{i}",
                        f"        expr: node_memory_Active_bytes{{device=\"{dev}\",instance=\"{inst}\",mode=\"{mode}\"}} > {4e12 + i}",
                        "        for: 5m", "        labels: {severity: warning}"]
            elif kind == 1:
                out += [f"      - alert: CpuBusy{i}",
                        f"        expr: rate(node_cpu_seconds_total{{device=\"{dev}\",mode=\"{mode}\"}}[5m]) > {100 + i}",
                        "        for: 10m", "        labels: {severity: page}"]
            elif kind == 2:
                out += [f"      - alert: FsLowOnUp{i}",
                        f"        expr: (node_filesystem_avail_bytes{{device=\"{dev}\",instance=\"{inst}\"}} < {i}) and on(instance) (up{{job=\"t\"}} == 1)",
                        "        for: 5m", "        labels: {severity: warning}"]
            elif kind == 3:
                out += [f"      - record: job:node_network_receive_bytes:rate5m_{i}",
                        f"        expr: sum by (job) (rate(node_network_receive_bytes_total{{device=\"{dev}\"}}[5m]))"]
            else:
                out += [f"      - alert: DiskGone{i}",
                        f"        expr: absent(node_disk_io_time_seconds_total{{device=\"{dev}\",job=\"t\"}})",
                        "        for: 10m", "        labels: {severity: page}"]
    return "\n".join(out) + "\n"


def main():
    tmp = tempfile.mkdtemp(prefix="tocsin-lint-bench-")
    procs = []
    try:
        addrs = os.path.join(tmp, "addrs")
        procs.append(subprocess.Popen([BIN, "bench", "targets", "--targets", str(TARGETS), "--series", str(SERIES),
                                       "--addr-file", addrs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait("targets", lambda: os.path.exists(addrs))
        targets = [l.strip() for l in open(addrs) if l.strip()]
        with open(os.path.join(tmp, "rules.yml"), "w") as f:
            f.write(rules_yaml(targets))
        cfg = os.path.join(tmp, "tocsin.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n  evaluation_interval: 30s\n"
                    "rule_files: [rules.yml]\n"
                    "scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: "
                    + json.dumps(targets) + "\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        procs.append(subprocess.Popen([BIN, "server", "--config", cfg, "--listen", f"127.0.0.1:{port}",
                                       "--data-dir", os.path.join(tmp, "data")],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "w")))
        wait("server ready", lambda: urllib.request.urlopen(url + "/-/ready", timeout=5).status == 200)
        q = urllib.parse.quote('count({job="t"})')
        wait("100,000 series", lambda: float(get(f"{url}/api/v1/query?query={q}")["data"]["result"][0]["value"][1]) >= TARGETS * SERIES)
        # Two more scrapes and a rule evaluation, so every rule has data behind it.
        time.sleep(35)
        series = get(f"{url}/api/v1/status/tsdb")["data"]["headStats"]["numSeries"]
        walls, prefetch, asked, products = [], [], None, {}
        for _ in range(RUNS):
            t0 = time.monotonic()
            p = subprocess.run([BIN, "lint", "--config", cfg, "--server", url, "--output", "json", "--timings"],
                               capture_output=True, text=True)
            walls.append(time.monotonic() - t0)
            if p.returncode not in (0, 1):
                sys.exit(f"lint failed ({p.returncode}): {p.stderr}")
            line = [l for l in p.stderr.splitlines() if l.startswith("lint timings:")][0]
            parts = line.split()
            total, pre = float(parts[3]), float(parts[6])
            prefetch.append(pre / total)
            asked = int(line.split(";")[1].split()[0])
            products = {}
            for r in json.loads(p.stdout)["rules"]:
                products[r["product"]] = products.get(r["product"], 0) + 1
        print(f"estate: {series} series in the head, 1000 rules (20 groups), {TARGETS} targets")
        print(f"lint runs (wall, s): {', '.join(f'{w:.2f}' for w in walls)}")
        print(f"median wall time: {statistics.median(walls):.2f} s (goal < 5 s)")
        print(f"median prefetch share: {100 * statistics.median(prefetch):.0f}% ({asked} live questions about rules per run)")
        print("lint rules per product: " + ", ".join(f"{k} {v}" for k, v in sorted(products.items())) +
              f" (total {sum(products.values())})")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", tmp])


main()
