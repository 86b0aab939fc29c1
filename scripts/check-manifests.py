#!/usr/bin/env python3
"""What the real tools do not check in the shipped manifests. Rendering is kustomize's
(`kubectl kustomize`), schemas are kubernetes-validate's and security findings checkov's; this
script reads their rendered output and checks regtrust's own rules:

- the DaemonSet's placement, probes and hardening; that the host's / is the only host mount
  besides the state dir, read-only with HostToContainer, and that only the staging overlay adds
  writable certificate directories (DirectoryOrCreate only there and for the state dir);
- that the DaemonSet names the generated config ConfigMap, and REGTRUST_HOST_ROOT, the config's
  host_root and the mount agree;
- that node-problem-detector's DaemonSet patch mounts exactly what the DaemonSet mounts;
- that deploy/kubernetes/monitoring/prometheusrule.yaml holds the groups of
  deploy/prometheus/alerts.yaml.

It writes each overlay's regtrust.toml to OUT_DIR for the Rust test to parse with regtrust's own
validator.

usage: check-manifests.py OUT_DIR NAME=RENDERED.yaml ...   (NAME: base, staging, all-nodes, monitoring)
       check-manifests.py --write-prometheusrule            (regenerates prometheusrule.yaml)
"""
import json, os, sys
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml")
RULE = os.path.join(ROOT, "deploy", "kubernetes", "monitoring", "prometheusrule.yaml")
NPD = os.path.join(ROOT, "deploy", "node-problem-detector")
CERT_DIRS = ("/etc/containerd/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")
errors = []

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml by scripts/check-manifests.py --write-prometheusrule:
# edit that file and regenerate (the deploy tests fail while the two differ).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: regtrust
  namespace: regtrust
spec:
"""


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def prometheusrule_text():
    """The PrometheusRule: alerts.yaml's `groups:` block, indented under spec (comments kept)."""
    with open(ALERTS) as f:
        lines = f.read().splitlines()
    start = lines.index("groups:")
    return RULE_HEADER + "\n".join(("  " + l) if l else l for l in lines[start:]) + "\n"


def check_prometheusrule(docs):
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    alerts = load(ALERTS)[0]
    if len(rules) != 1:
        errors.append(f"monitoring: {len(rules)} PrometheusRules, want 1")
    elif rules[0]["spec"]["groups"] != alerts["groups"]:
        errors.append("monitoring: the PrometheusRule's groups differ from deploy/prometheus/alerts.yaml "
                      "(run scripts/check-manifests.py --write-prometheusrule)")
    pms = [d for d in docs if d["kind"] == "PodMonitor"]
    if len(pms) != 1 or [e.get("port") for e in pms[0]["spec"]["podMetricsEndpoints"]] != ["metrics"]:
        errors.append("monitoring: not one PodMonitor scraping the metrics port")


def host_mounts(pod_spec, container):
    """(mountPath, hostPath, hostPath type, readOnly, propagation) of every hostPath mount."""
    vols = {v["name"]: v["hostPath"] for v in pod_spec.get("volumes", []) if "hostPath" in v}
    out = []
    for m in container.get("volumeMounts", []):
        if m["name"] in vols:
            hp = vols[m["name"]]
            out.append((m["mountPath"], hp["path"], hp.get("type", ""), m.get("readOnly", False),
                        m.get("mountPropagation", "None")))
    return sorted(out)


def check_placement(spec, name):
    all_nodes = name == "all-nodes"
    terms = (spec.get("affinity", {}).get("nodeAffinity", {})
             .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", []))
    keys = sorted(e["key"] for t in terms for e in t.get("matchExpressions", []) if e.get("operator") == "Exists")
    want = [] if all_nodes else ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"]
    if keys != want or (not all_nodes and len(terms) != 2):
        errors.append(f"{name}: node affinity Exists terms {keys}, want {want} (one term each: ORed)")
    if spec.get("nodeSelector") != {"kubernetes.io/os": "linux"}:
        errors.append(f"{name}: nodeSelector must be exactly kubernetes.io/os: linux")
    tol = sorted((t.get("operator"), t.get("effect"), t.get("key")) for t in spec.get("tolerations", []))
    if tol != [("Exists", "NoExecute", None), ("Exists", "NoSchedule", None)]:
        errors.append(f"{name}: tolerations {tol}: want operator Exists for NoSchedule and NoExecute, no key")


def check_daemonset(ds, name):
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    sc = c.get("securityContext", {})
    upd = ds["spec"].get("updateStrategy", {})
    want = {
        "hostNetwork": spec.get("hostNetwork") is True,
        "dnsPolicy Default": spec.get("dnsPolicy") == "Default",
        "priorityClassName system-node-critical": spec.get("priorityClassName") == "system-node-critical",
        "RollingUpdate with maxUnavailable": upd.get("type") == "RollingUpdate"
        and "maxUnavailable" in upd.get("rollingUpdate", {}),
        "terminationMessagePolicy FallbackToLogsOnError": c.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
        "drop ALL capabilities": sc.get("capabilities", {}).get("drop") == ["ALL"],
        "no privilege escalation": sc.get("allowPrivilegeEscalation") is False,
        "seccomp RuntimeDefault": spec.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "imagePullPolicy IfNotPresent": c.get("imagePullPolicy") == "IfNotPresent",
        "liveness /healthz": c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
        "readiness /readyz": c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
        "metrics port": any(p.get("name") == "metrics" for p in c.get("ports", [])),
        "requests and limits": all(k in c.get("resources", {}) for k in ("requests", "limits")),
        "no API token": spec.get("automountServiceAccountToken") is False,
        "an image with a tag or digest": ":" in c.get("image", "") or "@sha256:" in c.get("image", ""),
    }
    for what, ok in want.items():
        if not ok:
            errors.append(f"{name}: DaemonSet lacks {what}")
    check_placement(spec, name)
    mounts = host_mounts(spec, c)
    base = [("/host", "/", "Directory", True, "HostToContainer"),
            ("/var/lib/regtrust", "/var/lib/regtrust", "DirectoryOrCreate", False, "None")]
    extra = [m for m in mounts if m not in base]
    if any(b not in mounts for b in base):
        errors.append(f"{name}: host mounts {mounts} lack {base}")
    for m in extra:
        path, host, typ, ro, _ = m
        ok = (name == "staging" and host in CERT_DIRS and path == "/host" + host and not ro
              and typ == "DirectoryOrCreate")
        if not ok:
            errors.append(f"{name}: host mount {m}: only the staging overlay adds writable certs.d mounts "
                          f"at /host<same path> ({CERT_DIRS})")
    if name == "staging" and not extra:
        errors.append("staging: no certificate directory is writable")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("REGTRUST_HOST_ROOT") != "/host":
        errors.append(f"{name}: REGTRUST_HOST_ROOT is {env.get('REGTRUST_HOST_ROOT')!r}, want /host")
    return spec, c


def check_overlay(name, docs, out):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ds = by_kind.get("DaemonSet", [])
    if len(ds) != 1:
        errors.append(f"{name}: {len(ds)} DaemonSets, want 1")
        return
    spec, c = check_daemonset(ds[0], name)
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    cm_name = vols.get("config", {}).get("configMap", {}).get("name", "")
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    if not cm_name.startswith("regtrust-config-") or cm_name not in cms:
        errors.append(f"{name}: the config volume names {cm_name!r}, not a generated ConfigMap of the output "
                      f"({sorted(cms)}): a config change would not roll the pods")
        return
    with open(os.path.join(out, f"{name}-regtrust.toml"), "w") as f:
        f.write(cms[cm_name]["data"]["regtrust.toml"])
    with open(os.path.join(out, f"{name}-daemonset.json"), "w") as f:
        json.dump(ds[0], f)


def check_npd(base_docs):
    """node-problem-detector's patch mounts what the DaemonSet mounts read-only, and the plugin
    reads under that host root."""
    ds = [d for d in base_docs if d["kind"] == "DaemonSet"][0]
    spec = ds["spec"]["template"]["spec"]
    ours = [m for m in host_mounts(spec, spec["containers"][0]) if m[3]]
    patch = load(os.path.join(NPD, "daemonset-patch.yaml"))[0]
    pspec = patch["spec"]["template"]["spec"]
    theirs = host_mounts(pspec, pspec["containers"][0])
    if theirs != ours:
        errors.append(f"node-problem-detector: patch mounts {theirs}, the DaemonSet {ours}")
    for k in ("hostNetwork", "dnsPolicy"):
        if pspec.get(k) != spec.get(k):
            errors.append(f"node-problem-detector: patch {k} {pspec.get(k)!r}, the DaemonSet {spec.get(k)!r}")
    with open(os.path.join(NPD, "regtrust-plugin-monitor.json")) as f:
        monitor = json.load(f)
    for rule in monitor["rules"]:
        args = rule["args"]
        root = args[args.index("--host-root") + 1] if "--host-root" in args else None
        if root != ours[0][0]:
            errors.append(f"node-problem-detector: rule {rule['reason']} reads --host-root {root}, mounted at {ours[0][0]}")


def main():
    if sys.argv[1:] == ["--write-prometheusrule"]:
        with open(RULE, "w") as f:
            f.write(prometheusrule_text())
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rendered = dict(a.split("=", 1) for a in sys.argv[2:])
    for name in ("base", "staging", "all-nodes", "monitoring"):
        if name not in rendered:
            errors.append(f"no rendered output for {name}")
    docs = {name: load(path) for name, path in rendered.items()}
    for name in ("base", "staging", "all-nodes"):
        check_overlay(name, docs.get(name, []), out)
    check_prometheusrule(docs.get("monitoring", []))
    check_npd(docs.get("base", []))
    with open(RULE) as f:
        if f.read() != prometheusrule_text():
            errors.append("prometheusrule.yaml is not what --write-prometheusrule generates: regenerate it")
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)


main()
