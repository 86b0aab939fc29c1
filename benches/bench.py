#!/usr/bin/env python3
"""regtrust agent vs prometheus-blackbox-exporter vs curl on the same TLS registry.

Run through scripts/bench (it sets up the names). Every endpoint probe is a fresh TCP connection and
a full TLS handshake in all three tools. Prints a markdown table for the README.
"""
import json, os, re, resource, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
INTERVAL = 5
COUNTS = [int(c) for c in os.environ.get("BENCH_COUNTS", "1,50,200,1000").split(",")]
# The scale point: registries x endpoints each (one own name, the rest shared mirrors m1..m9.test),
# probed every SCALE_INTERVAL s; regtrust only (blackbox is stateless: one /probe per target).
SCALE = tuple(int(c) for c in os.environ.get("BENCH_SCALE", "1000x10").split("x")) if os.environ.get("BENCH_SCALE") != "0" else None
SCALE_INTERVAL = int(os.environ.get("BENCH_SCALE_INTERVAL", "60"))
E2E = os.environ.get("BENCH_E2E", "1") == "1"
TOOLS = os.environ.get("BENCH_TOOLS", "regtrust,blackbox").split(",")
LAUNCH = ["python3", "-c", "import ctypes,os,sys; ctypes.CDLL(None).prctl(41,1,0,0,0); os.execv(sys.argv[1], sys.argv[1:])"] if os.environ.get("BENCH_NOTHP") == "1" else []
# A profiler in front of regtrust, e.g. BENCH_WRAP="heaptrack -o /tmp/ht" (its figures are then the wrapper's).
LAUNCH += os.environ.get("BENCH_WRAP", "").split()
SMAPS = os.environ.get("BENCH_SMAPS") == "1"
PERF = os.environ.get("BENCH_PERF")  # a directory: `perf record --call-graph dwarf` of regtrust during each measurement, perf-N.data  # print where regtrust's resident memory is, per mapping
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGTRUST = os.environ.get("REGTRUST_BIN") or os.path.join(ROOT, "target/release/regtrust")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, proc, what, limit=15):
    end = time.time() + limit
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen")


def rss_mib(pid, key="VmRSS:"):
    """VmRSS: all resident pages; RssAnon: private memory (heap, stacks), without the binary's pages."""
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith(key):
                return int(l.split()[1]) / 1024
    return 0.0


class Cpu:
    """CPU seconds of a process and all its threads, the exited ones included.

    A cgroup of its own when the machine lets root make one (cgroup v1 cpuacct.usage or v2
    cpu.stat: nanosecond/microsecond counts, so six probes at one endpoint are measured, not
    rounded to /proc's 10 ms ticks); else /proc/PID/stat's utime + stime in ticks."""

    def __init__(self, pid, name):
        self.pid, self.dir, self.read = pid, None, None
        for base, path, scale in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage", 1e-9),
                                  ("/sys/fs/cgroup", "cpu.stat", 1e-6)):
            if not os.path.exists(f"{base}/cgroup.procs") or (path == "cpu.stat" and not os.path.exists(f"{base}/cgroup.controllers")):
                continue
            d = f"{base}/regtrust-bench-{name}-{pid}"
            try:
                os.mkdir(d)
                with open(f"{d}/cgroup.procs", "w") as f:
                    f.write(str(pid))
            except OSError:
                try: os.rmdir(d)
                except OSError: pass
                continue
            self.dir = d
            if path == "cpu.stat":
                self.read = lambda: int(next(l.split()[1] for l in open(f"{d}/cpu.stat") if l.startswith("usage_usec"))) * scale
            else:
                self.read = lambda: int(open(f"{d}/cpuacct.usage").read()) * scale
            break

    def __call__(self):
        if self.read:
            return self.read()
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def close(self):
        """After the process has exited: remove the cgroup."""
        if self.dir:
            for _ in range(50):
                try:
                    os.rmdir(self.dir); return
                except OSError:
                    time.sleep(0.1)


def smaps(pid, n):
    """Resident kB per mapping (file-backed by path, anonymous as [anon]/[heap]/[stack])."""
    per = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for l in f:
            parts = l.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", l):
                name = (parts[5] if len(parts) > 5 else "[anon]") + " " + parts[1]
            elif parts[0] in ("Rss:", "Anonymous:"):
                d = per.setdefault(name, [0, 0]); d[parts[0] == "Anonymous:"] += int(parts[1])
    print(f"-- regtrust at {n} endpoints: resident kB (total / anonymous) per mapping", file=sys.stderr)
    for k, (rss, anon) in sorted(per.items(), key=lambda kv: -kv[1][0])[:8]:
        print(f"   {rss:7d} {anon:7d}  {k}", file=sys.stderr)


def stop(p):
    """SIGTERM to regtrust — under a BENCH_WRAP profiler, the regtrust process of its group, so the
    profiler sees it end and writes its data — then wait for the process started."""
    targets = [p.pid]
    if LAUNCH:
        targets = [int(d) for d in os.listdir("/proc") if d.isdigit() and _in_group(int(d), p.pid)] or targets
    for pid in targets:
        try:
            # BENCH_STOP_SIGNAL=9 under heaptrack: what is still allocated is reported as leaked,
            # i.e. the live heap at the end of the measurement.
            os.kill(pid, int(os.environ.get("BENCH_STOP_SIGNAL", "15")))
        except ProcessLookupError:
            pass
    p.wait(120)


def _in_group(pid, pgid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[2]) == pgid and open(f"/proc/{pid}/comm").read().strip() == "regtrust"
    except (OSError, IndexError, ValueError):
        return False


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def sh(*a, **k):
    return subprocess.run(a, check=True, capture_output=True, **k)


def main():
    work = tempfile.mkdtemp(prefix="regtrust-bench-")
    procs, cleanup = [], []
    try:
        # Certificates: RSA-2048 CA and leaf for r*.test and 127.0.0.1.
        os.chdir(work)
        open("san.ext", "w").write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:*.test\n")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "5",
           "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=r1.test")
        sh("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
           "-days", "5", "-extfile", "san.ext")
        rport = free_port()
        os.makedirs("data")
        open("registry.yml", "w").write(
            "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: data}}\n"
            f"http: {{addr: 127.0.0.1:{rport}, secret: bench, tls: {{certificate: srv.pem, key: srv.key}}}}\n")
        reg = subprocess.Popen(["docker-registry", "serve", "registry.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(reg); wait_port(rport, reg, "docker-registry")

        # A node for regtrust: the real system bundle plus one legacy host dir (ca.crt) per registry name.
        hostroot = os.path.join(work, "host")
        os.makedirs(f"{hostroot}/etc/ssl/certs")
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            shutil.copy("/etc/ssl/certs/ca-certificates.crt", f"{hostroot}/etc/ssl/certs/")

        def curl_walls(n, count):
            """curl's time_total (ms) of `count` fresh-connection GETs, round robin over r1 … rN.test."""
            walls = []
            for k in range(count):
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", "--cacert", "ca.pem",
                                      f"https://r{k % max(n, 1) + 1}.test:{rport}/v2/"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
                walls.append(float(out.stdout) * 1000)
            return walls

        # curl: fresh-connection GETs, CPU from rusage of the children.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        n_curl = 100
        curl_wall = curl_walls(1, n_curl)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        curl_cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / n_curl * 1000

        rows = {}

        def regtrust_run(n, per=1, interval=INTERVAL, idle_window=None):
            # curl's wall for this point: 50 GETs on the point's names just before regtrust starts
            # and 50 just after it stops (never while it runs), so the reference is taken on the
            # same registry, in the same minute — the machine's speed drifts over a run.
            curl_near = curl_walls(n, 50) if n and interval == INTERVAL and not idle_window else []
            d = f"{hostroot}/etc/containerd/certs.d"
            shutil.rmtree(d, ignore_errors=True)
            for i in range(1, n + 1):
                os.makedirs(f"{d}/r{i}.test:{rport}")
                shutil.copy("ca.pem", f"{d}/r{i}.test:{rport}/ca.crt")
                if per > 1:
                    hosts = "".join(f'[host."https://m{k}.test:{rport}"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n'
                                    for k in range(1, per))
                    open(f"{d}/r{i}.test:{rport}/hosts.toml", "w").write(
                        f'server = "https://r{i}.test:{rport}"\nca = "ca.crt"\n' + hosts)
            port = free_port()
            state = tempfile.mkdtemp(dir=work)
            p = subprocess.Popen(LAUNCH + [REGTRUST, "run", "--host-root", hostroot, "--hosts-dir", "/etc/containerd/certs.d",
                                  "--interval", f"{interval}s", "--timeout", "4s", "--listen", f"127.0.0.1:{port}", "--state-dir", state],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env={"PATH": os.environ["PATH"], "REGTRUST_LOG": "error", **({"MALLOC_ARENA_MAX": os.environ["BENCH_ARENAS"]} if os.environ.get("BENCH_ARENAS") else {})})
            procs.append(p); cpu_s = Cpu(p.pid, "regtrust"); cleanup.append(cpu_s.close); wait_port(port, p, "regtrust")
            time.sleep(1)
            idle = rss_mib(p.pid) if n == 0 else None
            if idle_window:
                # The first round is done; no probe is due for `interval`: CPU per second while idle.
                time.sleep(2)
                c0 = cpu_s(); time.sleep(idle_window); c1 = cpu_s()
                stop(p)
                return dict(idle_cpu=(c1 - c0) / idle_window * 1000)
            # The probe count comes from the scrapes around the window; the scrapes' own CPU stays
            # outside it (blackbox's window has no scrape either).
            m0 = probes(get(f"http://127.0.0.1:{port}/metrics"))
            c0, t0 = cpu_s(), time.time()
            rec = None
            if PERF:
                rec = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(p.pid), "-o", f"{PERF}/perf-{n}x{per}.data"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(SECONDS if interval == INTERVAL else interval + 5)
            if rec:
                rec.send_signal(2); rec.wait(60)
            c1 = cpu_s()
            text = get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            m1 = probes(text)
            ok = len(re.findall(r'^regtrust_probe_success\{.*\} 1$', text, re.M))
            walls = [float(x) * 1000 for x in re.findall(r'^regtrust_probe_total_duration_seconds\{.*\} (\S+)$', text, re.M)]
            series = len(re.findall(r'^regtrust_probe_success\{', text, re.M))
            phases = {}
            for ph, v in re.findall(r'^regtrust_probe_duration_seconds\{phase="(\w+)".*\} (\S+)$', text, re.M):
                phases.setdefault(ph, []).append(float(v) * 1000)
            scrape = []
            for _ in range(20):
                s = time.perf_counter(); get(f"http://127.0.0.1:{port}/metrics"); scrape.append((time.perf_counter() - s) * 1000)
            r = dict(rss=rss_mib(p.pid), anon=rss_mib(p.pid, "RssAnon:"), idle=idle, cpu=(c1 - c0) / max(m1 - m0, 1) * 1000, probes=m1 - m0, ok=ok,
                     wall=statistics.median(walls) if walls else None, scrape=statistics.median(scrape), series=series,
                     phases={k: round(statistics.median(v), 3) for k, v in phases.items()})
            if SMAPS:
                smaps(p.pid, n)
            stop(p)
            if curl_near:
                r["curl"] = statistics.median(curl_near + curl_walls(n, 50))
            return r

        def probes(text):
            return sum(float(v) for v in re.findall(r'^regtrust_probes_total\{.*\} (\S+)$', text, re.M))

        def blackbox_run(n):
            port = free_port()
            open("bb.yml", "w").write("modules:\n  registry_v2:\n    prober: http\n    timeout: 10s\n    http:\n"
                                      "      valid_status_codes: [200, 401]\n      fail_if_not_ssl: true\n"
                                      f"      tls_config: {{ca_file: {work}/ca.pem}}\n")
            p = subprocess.Popen(["prometheus-blackbox-exporter", "--config.file=bb.yml", f"--web.listen-address=127.0.0.1:{port}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p); cpu_s = Cpu(p.pid, "blackbox"); cleanup.append(cpu_s.close); wait_port(port, p, "blackbox")
            time.sleep(1)
            idle = rss_mib(p.pid) if n == 0 else None
            c0 = cpu_s()
            done, walls, oks = 0, [], 0
            pool = ThreadPoolExecutor(16)

            def one(i):
                t = get(f"http://127.0.0.1:{port}/probe?module=registry_v2&target=https://r{i}.test:{rport}/v2/")
                m = re.search(r'^probe_duration_seconds (\S+)$', t, re.M)
                return float(m.group(1)) * 1000 if m else None, "probe_success 1" in t

            end = time.time() + SECONDS
            while n and time.time() < end:
                start = time.time()
                for w, ok in pool.map(one, range(1, n + 1)):
                    done += 1; oks += ok
                    if w is not None: walls.append(w)
                time.sleep(max(0, INTERVAL - (time.time() - start)))
            if not n:
                time.sleep(SECONDS)
            c1 = cpu_s()
            r = dict(rss=rss_mib(p.pid), anon=rss_mib(p.pid, "RssAnon:"), idle=idle, cpu=(c1 - c0) / max(done, 1) * 1000, probes=done, ok=oks,
                     wall=statistics.median(walls) if walls else None, scrape=None)
            p.terminate(); p.wait(10)
            return r

        # Point by point, regtrust then blackbox: the two figures of a ratio are taken minutes
        # apart at most, not a whole half of the run (the machine's speed drifts).
        for n in [0] + COUNTS:
            for tool, fn in (("regtrust", regtrust_run), ("blackbox", blackbox_run)):
                if tool in TOOLS:
                    rows.setdefault(tool, {})[n] = fn(n)
        extra = {}
        if "regtrust" in TOOLS:
            if not os.environ.get("BENCH_WRAP"):  # a profiler keeps the data of the last run
                extra["idle"] = regtrust_run(1, interval=600, idle_window=10)["idle_cpu"]
            if SCALE:
                extra["scale"] = regtrust_run(SCALE[0], per=SCALE[1], interval=SCALE_INTERVAL)
            if E2E:
                import e2e
                extra["e2e"] = e2e.run(REGTRUST, work, free_port, wait_port, procs)
        if len(rows) < 2:
            print(json.dumps({"rows": rows, **extra}, indent=1, default=str)); return

        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        print(f"\nregtrust {sh(REGTRUST, '--version').stdout.decode().strip()} vs prometheus-blackbox-exporter, "
              f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}), {SECONDS} s per point, every endpoint "
              f"probed every {INTERVAL} s, RSA-2048 chain; ratio = regtrust / blackbox (wall: / curl, "
              f"whose wall is measured on the point's names just before and after each regtrust point)\n")
        R, B = rows["regtrust"], rows["blackbox"]
        fmt = lambda v, u="", p=1: "—" if v is None else f"{v:.{p}f}{u}"
        ratio = lambda a, b: "—" if a is None or not b else f"{a / b:.2f}"
        curl_w = statistics.median(curl_wall)
        print("| | regtrust | blackbox_exporter | curl | ratio |")
        print("|---|---|---|---|---|")
        print(f"| RSS idle | {fmt(R[0]['rss'], ' MiB')} | {fmt(B[0]['rss'], ' MiB')} | | {ratio(R[0]['rss'], B[0]['rss'])} |")
        for n in COUNTS:
            print(f"| RSS, {n} endpoints | {fmt(R[n]['rss'], ' MiB')} | {fmt(B[n]['rss'], ' MiB')} | | {ratio(R[n]['rss'], B[n]['rss'])} |")
        for n in COUNTS:
            print(f"| private memory (RssAnon), {n} endpoints | {fmt(R[n]['anon'], ' MiB')} | {fmt(B[n]['anon'], ' MiB')} | | {ratio(R[n]['anon'], B[n]['anon'])} |")
        hi = max(COUNTS)
        if hi > 1 and 1 in COUNTS:
            per = (R[hi]['anon'] - R[1]['anon']) * 1024 / (hi - 1)
            print(f"| private memory per registry (1 → {hi}) | {per:.1f} KiB | | | |")
        for n in COUNTS:
            print(f"| CPU per probe, {n} endpoints | {fmt(R[n]['cpu'], ' ms', 2)} | {fmt(B[n]['cpu'], ' ms', 2)} | {fmt(curl_cpu, ' ms', 2)} (whole process) | {ratio(R[n]['cpu'], B[n]['cpu'])} |")
        if "idle" in extra:
            print(f"| CPU idle (1 endpoint, no probe due) | {extra['idle']:.3f} ms/s | | | |")
        for n in COUNTS:
            cw = R[n].get("curl", curl_w)
            print(f"| wall per probe (median), {n} endpoints | {fmt(R[n]['wall'], ' ms')} | {fmt(B[n]['wall'], ' ms')} | {fmt(cw, ' ms')} | {ratio(R[n]['wall'], cw)} (vs curl) |")
        for n in COUNTS:
            if n >= 200:
                print(f"| /metrics scrape, {n} endpoints (median of 20) | {fmt(R[n]['scrape'], ' ms')} | (one /probe per target) | | |")
        for n in COUNTS:
            if n >= 200:
                print(f"| probes done / ok, {n} endpoints | {R[n]['probes']:.0f} / {R[n]['ok']} ok | {B[n]['probes']} / {B[n]['ok']} ok | | |")
        sc = extra.get("scale")
        if sc:
            n, per = SCALE
            print(f"| scale: {n} registries × {per} endpoints, every {SCALE_INTERVAL} s | RSS {sc['rss']:.1f} MiB, RssAnon {sc['anon']:.1f} MiB, "
                  f"CPU {sc['cpu']:.2f} ms/probe, {sc['probes']:.0f} probes, {sc['series']} series ({sc['ok']} ok), /metrics {sc['scrape']:.0f} ms | | | |")
        e = extra.get("e2e")
        if e:
            t = lambda k: (f"{e[k]['median']:.2f} s (worst {e[k]['worst']:.2f}, {e[k]['runs']} runs"
                           + (f", {e[k]['misses']} did not finish" if e[k]['misses'] else "") + ")") if e[k]['median'] is not None else "did not finish"
            print(f"| end to end: trust-file change → metric | {t('file_change')} | | | |")
            print(f"| end to end: rotation → `regtrust_ca_drift` = 1 (interval {e['interval']} s) | {t('rotation')} | | | |")
            print(f"| end to end: rotation → first `ctr` pull, staging on (interval {e['interval']} s) | {t('staged')} | | | |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill(); p.wait()
        for c in cleanup:
            c()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
