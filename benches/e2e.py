"""End to end, on the real registry, containerd and the agent (benchmark, not a test).

Three times, each the median of RUNS runs, every wait bounded:
- a trust-file change -> the updated metric (`regtrust_probe_success` flips);
- the registry's rotation to a new CA with the same name -> `regtrust_ca_drift{kind="presented_untrusted"}` = 1;
- with staging on, the rotation -> the first successful `ctr content fetch` of an image.
Imported by bench.py, which runs it inside its private mount namespace (r*.test is 127.0.0.1).
"""
import gzip, hashlib, io, json, os, re, shutil, statistics, subprocess, tarfile, tempfile, time
import urllib.request

RUNS = int(os.environ.get("BENCH_E2E_RUNS", "5"))
IMAGE = "bench/img:v1"


def sh(*a, **k):
    return subprocess.run(a, check=True, capture_output=True, **k)


def metric(text, name, labels):
    """The value of the first sample of `name` whose labels include `labels`."""
    for m in re.finditer(rf'^{name}\{{(.*)\}} (\S+)$', text, re.M):
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


def until(cond, limit, step=0.01):
    """Seconds until cond() holds, polled every `step`; None when it did not within `limit`."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if cond():
            return time.perf_counter() - start
        time.sleep(step)
    return None


class Times:
    """Samples of one end-to-end time; a run that did not finish within its bound is a miss."""

    def __init__(self):
        self.samples, self.misses = [], 0

    def add(self, t0, done):
        if done is None:
            self.misses += 1
        else:
            self.samples.append(time.perf_counter() - t0)

    def summary(self):
        med = statistics.median(self.samples) if self.samples else None
        return dict(median=med, worst=max(self.samples) if self.samples else None, runs=len(self.samples), misses=self.misses)


def make_ca(work, name, cn):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{work}/{name}.key", "-out", f"{work}/{name}.pem",
       "-days", "5", "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(work, name, ca):
    ext = f"{work}/{name}.ext"
    open(ext, "w").write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                         "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:*.test\n")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{work}/{name}.key", "-out", f"{work}/{name}.csr", "-subj", "/CN=e2e.test")
    sh("openssl", "x509", "-req", "-in", f"{work}/{name}.csr", "-CA", f"{work}/{ca}.pem", "-CAkey", f"{work}/{ca}.key",
       "-CAcreateserial", "-out", f"{work}/{name}.pem", "-days", "5", "-extfile", ext)


def oci_layout(d):
    """A one-layer image in an OCI layout at `d`, tagged v1."""
    os.makedirs(f"{d}/blobs/sha256")

    def put(data):
        dg = hashlib.sha256(data).hexdigest()
        open(f"{d}/blobs/sha256/{dg}", "wb").write(data)
        return f"sha256:{dg}", len(data)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        body = b"hello from the regtrust bench\n"
        info = tarfile.TarInfo("hello.txt"); info.size = len(body); t.addfile(info, io.BytesIO(body))
    tar = raw.getvalue()
    layer = put(gzip.compress(tar, mtime=0))
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode())
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer[0], "size": layer[1]}]}).encode())
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest[0],
                                                  "size": manifest[1], "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
              open(f"{d}/index.json", "w"))
    open(f"{d}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')


class Registry:
    """docker-registry on one port over TLS with a leaf that can be swapped (a restart)."""

    def __init__(self, work, port, storage, wait_port):
        self.work, self.port, self.storage, self.wait_port, self.proc = work, port, storage, wait_port, None

    def serve(self, leaf):
        self.stop()
        cfg = f"{self.work}/reg-{leaf}.yml"
        open(cfg, "w").write(
            "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.port}, secret: bench, tls: {{certificate: {self.work}/{leaf}.pem, key: {self.work}/{leaf}.key}}}}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_port(self.port, self.proc, "docker-registry")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill(); self.proc.wait()


def run(regtrust, work, free_port, wait_port, procs):
    """The three end-to-end medians (seconds), with the agent's interval, or None when a tool is missing."""
    for tool in ("containerd", "ctr", "skopeo", "docker-registry"):
        if not shutil.which(tool):
            return None
    work = tempfile.mkdtemp(dir=work, prefix="e2e-")
    make_ca(work, "ca_a", "e2e CA")
    make_ca(work, "ca_b", "e2e CA")  # the incident: a new CA with the same name
    make_leaf(work, "leaf_a", "ca_a")
    make_leaf(work, "leaf_b", "ca_b")
    port = free_port()
    name = f"r1.test:{port}"
    reg = Registry(work, port, f"{work}/storage", wait_port)
    reg.serve("leaf_a")
    # The image, pushed once by skopeo.
    oci_layout(f"{work}/oci")
    os.makedirs(f"{work}/push-certs")
    shutil.copy(f"{work}/ca_a.pem", f"{work}/push-certs/ca.crt")
    open(f"{work}/policy.json", "w").write('{"default":[{"type":"insecureAcceptAnything"}]}')
    sh("skopeo", "copy", "--quiet", "--policy", f"{work}/policy.json", "--dest-cert-dir", f"{work}/push-certs",
       f"oci:{work}/oci:v1", f"docker://{name}/{IMAGE}")

    # containerd of our own (no CRI) for ctr.
    ctd_sock = f"{work}/containerd.sock"
    open(f"{work}/containerd.toml", "w").write(
        f'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\nroot = "{work}/ctd-root"\nstate = "{work}/ctd-state"\n'
        f'[grpc]\n  address = "{ctd_sock}"\n[ttrpc]\n  address = "{ctd_sock}.ttrpc"\n')
    ctd = subprocess.Popen(["containerd", "--config", f"{work}/containerd.toml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(ctd)
    if until(lambda: os.path.exists(ctd_sock), 10) is None:
        raise SystemExit("containerd did not start")

    host = f"{work}/host"
    hosts_dir = f"{host}/etc/containerd/certs.d"
    reg_dir = f"{hosts_dir}/{name}"
    os.makedirs(reg_dir)
    open(f"{reg_dir}/hosts.toml", "w").write(f'server = "https://{name}"\n[host."https://{name}"]\n  capabilities = ["pull", "resolve"]\n  ca = "ca.crt"\n')

    def trust(ca):
        for f in os.listdir(reg_dir):
            if f.startswith("ca.crt"):
                os.remove(f"{reg_dir}/{f}")
        shutil.copy(f"{work}/{ca}.pem", f"{reg_dir}/ca.crt.tmp")
        os.rename(f"{reg_dir}/ca.crt.tmp", f"{reg_dir}/ca.crt")

    trust("ca_a")
    shutil.copy(f"{work}/ca_b.pem", f"{work}/expected.pem")
    interval = 5

    def agent(stage):
        lport = free_port()
        state = tempfile.mkdtemp(dir=work)
        cfg = f"{work}/agent-{stage}.toml"
        open(cfg, "w").write(
            f'host_root = "{host}"\nruntime = "containerd"\nhosts_dir = "/etc/containerd/certs.d"\nstate_dir = "{state}"\n'
            f'listen = "127.0.0.1:{lport}"\ninterval = "{interval}s"\ntimeout = "2s"\njitter = 0.0\nstage_min_interval = "1s"\n'
            f'[[registry]]\nname = "{name}"\n' + (f'expected_ca_file = "{work}/expected.pem"\nstage = true\n' if stage else ""))
        log = open(f"{work}/agent-{stage}.log", "w")
        p = subprocess.Popen([regtrust, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log,
                             env={"PATH": os.environ["PATH"], "REGTRUST_LOG": "warn"})
        procs.append(p)
        wait_port(lport, p, "regtrust")
        return p, f"http://127.0.0.1:{lport}/metrics"

    def scrape(url):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def success(url):
        return metric(scrape(url), "regtrust_probe_success", {"registry": name})

    def drift(url):
        return metric(scrape(url), "regtrust_ca_drift", {"registry": name, "kind": "presented_untrusted"})

    # 1 and 2: an agent without staging.
    p, url = agent(False)
    if until(lambda: success(url) == 1.0, 3 * interval) is None:
        raise SystemExit("e2e: the agent never saw the registry ok:\n" + scrape(url)[-2000:] + open(f"{work}/agent-False.log").read()[-3000:])
    file_change = Times()
    for i in range(RUNS):
        for ca, want in (("ca_b", 0.0), ("ca_a", 1.0)):
            t0 = time.perf_counter()
            trust(ca)
            file_change.add(t0, until(lambda: success(url) == want, 3 * interval))
    rotation = Times()
    for i in range(RUNS):
        reg.serve("leaf_b")
        t0 = time.perf_counter()
        rotation.add(t0, until(lambda: drift(url) == 1.0, 3 * interval))
        reg.serve("leaf_a")
        until(lambda: drift(url) == 0.0, 3 * interval)
    p.terminate(); p.wait(10)

    # 3: staging on: the rotation, then ctr pulls as soon as the agent has staged CA-B.
    def pulls():
        r = subprocess.run(["timeout", "10", "ctr", "-a", ctd_sock, "-n", "bench", "content", "fetch", "--hosts-dir", hosts_dir,
                            f"{name}/{IMAGE}"], capture_output=True)
        return r.returncode == 0

    staged = Times()
    for i in range(RUNS):
        trust("ca_a")
        reg.serve("leaf_a")
        p, url = agent(True)
        until(lambda: success(url) == 1.0, 3 * interval)
        reg.serve("leaf_b")
        t0 = time.perf_counter()
        staged.add(t0, until(pulls, 3 * interval, step=0.05))
        p.terminate(); p.wait(10)
    reg.stop()
    ctd.terminate(); ctd.wait(10)
    return dict(interval=interval, file_change=file_change.summary(), rotation=rotation.summary(), staged=staged.summary())
