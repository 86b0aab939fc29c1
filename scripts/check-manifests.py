#!/usr/bin/env python3
"""Renders deploy/kubernetes (base and the staging overlay), validates every object with
kubernetes-validate (offline schemas), checks the DaemonSet's security and placement settings,
and writes each agent config (regtrust.toml from the ConfigMaps) to OUT_DIR for the Rust test to
parse with regtrust's own validator.   usage: check-manifests.py OUT_DIR
"""
import copy, os, subprocess, sys, tempfile
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "kubernetes")
errors = []


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(base, patch):
    """A strategic-merge subset: maps merge, lists of named items merge by name, the rest replaces."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out = [copy.deepcopy(x) for x in base]
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                out.append(p)
        return out
    return patch


def render(dir_):
    k = load(os.path.join(dir_, "kustomization.yaml"))[0]
    docs = []
    for r in k.get("resources", []):
        p = os.path.join(dir_, r)
        docs += render(p) if os.path.isdir(p) else load(p)
    for patch in k.get("patches", []):
        for pd in load(os.path.join(dir_, patch["path"])):
            for i, d in enumerate(docs):
                if d["kind"] == pd["kind"] and d["metadata"]["name"] == pd["metadata"]["name"]:
                    docs[i] = merge(d, pd)
                    break
            else:
                errors.append(f"{dir_}: patch {patch['path']} matches no resource")
    labels = {}
    for l in k.get("labels", []):
        labels.update(l.get("pairs", {}))
    for d in docs:
        d.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        if k.get("namespace") and d["kind"] != "Namespace":
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def check_daemonset(ds, name, staging):
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    sc = c.get("securityContext", {})
    want = {
        "hostNetwork": spec.get("hostNetwork") is True,
        "dnsPolicy Default": spec.get("dnsPolicy") == "Default",
        "priorityClassName system-node-critical": spec.get("priorityClassName") == "system-node-critical",
        "control-plane nodeSelector": "node-role.kubernetes.io/control-plane" in spec.get("nodeSelector", {}),
        "control-plane toleration": any(t.get("key") == "node-role.kubernetes.io/control-plane" for t in spec.get("tolerations", [])),
        "master toleration": any(t.get("key") == "node-role.kubernetes.io/master" for t in spec.get("tolerations", [])),
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
    }
    for what, ok in want.items():
        if not ok:
            errors.append(f"{name}: DaemonSet lacks {what}")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path, m in mounts.items():
        if path.startswith("/host/"):
            writable = not m.get("readOnly", False)
            allowed = staging and path.endswith("/certs.d")
            if writable and not allowed:
                errors.append(f"{name}: host mount {path} is writable")
    if staging and not any(p.endswith("/certs.d") and not m.get("readOnly", False) for p, m in mounts.items()):
        errors.append(f"{name}: staging overlay makes no certs.d writable")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, dir_, staging in (("base", ROOT, False), ("staging", os.path.join(ROOT, "staging"), True)):
        docs = render(dir_)
        with tempfile.TemporaryDirectory() as t:
            files = []
            for i, d in enumerate(docs):
                if d["kind"] == "DaemonSet":
                    check_daemonset(d, name, staging)
                if d["kind"] == "ConfigMap" and "regtrust.toml" in d.get("data", {}):
                    with open(os.path.join(out, f"{name}-regtrust.toml"), "w") as f:
                        f.write(d["data"]["regtrust.toml"])
                p = os.path.join(t, f"{i}-{d['kind']}.yaml")
                with open(p, "w") as f:
                    yaml.safe_dump(d, f)
                files.append(p)
            r = subprocess.run(["kubernetes-validate", "--strict", "--quiet", *files], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(f"{name}: kubernetes-validate: {r.stdout}{r.stderr}")
    pm = load(os.path.join(ROOT, "podmonitor.yaml"))[0]
    # A CRD: no offline schema; check its shape.
    if pm.get("apiVersion") != "monitoring.coreos.com/v1" or pm["spec"]["podMetricsEndpoints"][0].get("port") != "metrics":
        errors.append("podmonitor.yaml: not a PodMonitor scraping the metrics port")
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)


main()
