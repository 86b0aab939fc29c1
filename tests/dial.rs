//! Dialing as Go dials: a registry name whose first address drops SYNs. Each case runs in a
//! network namespace the test creates (only `lo`: the registry listens on every address, and
//! 10.77.0.2 / 2001:db8::2 drop every SYN by iptables), with /etc/hosts bind-mounted so the dead
//! address comes first; regtrust, skopeo and ctr all run inside it. Needs root, as CI has.
//!
//! The name has 15 addresses, the dead one first: Go gives it `30 s / 15 = 2 s`, exactly
//! `saneMinimum`, and so does regtrust from its own 6 s deadline (`6 s / 15` is below the
//! minimum) — and each new connection of skopeo and ctr costs 2 s, not 15.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LIVE: &str = "10.77.0.1";
const PORT: u16 = 5443;

/// A network namespace of our own, deleted on drop.
struct NetNs {
    name: String,
    hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl NetNs {
    /// A namespace where `registry.test` resolves to `addrs` in this order.
    fn new(tag: &str, addrs: &[&str]) -> NetNs {
        require("ip");
        require("iptables");
        let name = format!("rt-dial-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        let dir = tmp();
        let hosts = dir.path().join("hosts");
        let lines: String = addrs
            .iter()
            .map(|a| format!("{a} registry.test\n"))
            .collect();
        write(&hosts, format!("127.0.0.1 localhost\n{lines}"));
        let ns = NetNs {
            name,
            hosts,
            _dir: dir,
        };
        ns.sh("ip link set lo up && for i in $(seq 1 16); do ip addr add 10.77.0.$i/32 dev lo; done && ip -6 addr add 2001:db8::2/128 dev lo nodad && iptables -A INPUT -d 10.77.0.2 -p tcp --syn -j DROP && ip6tables -A INPUT -d 2001:db8::2 -p tcp --syn -j DROP");
        ns
    }

    /// `program` inside the namespace, with the namespace's /etc/hosts.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
            .arg(&self.hosts)
            .arg(program);
        c
    }

    fn sh(&self, script: &str) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-ec", script])
            .status()
            .expect("run ip netns exec");
        assert!(st.success(), "in netns {}: {script}", self.name);
    }

    /// docker-registry serving `leaf` on every address, ready.
    fn registry(&self, leaf: &Issued) -> Killed {
        let dir = tmp();
        write(&dir.path().join("srv.pem"), leaf.pem());
        write(&dir.path().join("srv.key"), leaf.key.serialize_pem());
        let cfg = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: ':{PORT}', secret: test, tls: {{certificate: {1}/srv.pem, key: {1}/srv.key}}}}\n",
            seeded_storage().display(),
            dir.path().display()
        );
        write(&dir.path().join("config.yml"), cfg);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "docker-registry", "serve"])
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let start = Instant::now();
        loop {
            let up = Command::new("ip")
                .args(["netns", "exec", &self.name, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{LIVE}/{PORT}"))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not listen on {LIVE}:{PORT} in netns {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Killed { child, _dir: dir }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

struct Killed {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) {
    let st = Command::new(program).args(args).status().unwrap();
    assert!(st.success(), "{program} {args:?}");
}

fn out(o: &Output) -> String {
    format!(
        "rc {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// regtrust's check of `registry.test:PORT` inside `ns` (timeout `secs`) and the connect time.
fn regtrust_in(ns: &NetNs, root: &Path, runtime: &str, secs: u32) -> (Run, f64) {
    let mut args = check_args(root, secs);
    args.extend(["--runtime".to_string(), runtime.to_string()]);
    args.push(format!("registry.test:{PORT}"));
    let o = ns
        .cmd(env!("CARGO_BIN_EXE_regtrust"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let run = Run {
        code: o.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    };
    let connect = run.registry(0)["endpoints"][0]["timings_ms"]["connect"]
        .as_f64()
        .unwrap_or(-1.0);
    (run, connect)
}

/// skopeo and ctr, started together inside `ns` (each waits out the dead address's share of
/// its 30 s dial timeout).
fn runtimes_in(ns: &NetNs, node: &Node, ctrd: &Containerd) -> (Output, Output) {
    let reference = format!("registry.test:{PORT}/{IMAGE}");
    let skopeo = ns
        .cmd("timeout")
        .args([
            "60",
            "skopeo",
            "inspect",
            "--retry-times",
            "0",
            "--cert-dir",
        ])
        .arg(node.containers_dir(&format!("registry.test:{PORT}")))
        .arg(format!("docker://{reference}"))
        .envs(isolated_system_roots(node.root.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ctr = ns
        .cmd("timeout")
        .args(["60", "ctr", "-a"])
        .arg(&ctrd.sock)
        .args(["-n", "test", "content", "fetch", "--hosts-dir"])
        .arg(node.hosts_dir())
        .arg(&reference)
        .envs(isolated_system_roots(node.root.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (
        skopeo.wait_with_output().unwrap(),
        ctr.wait_with_output().unwrap(),
    )
}

fn setup() -> (Node, Issued) {
    let ca = ca("dial-ca");
    let mut p = leaf_params();
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress(LIVE.parse().unwrap()));
    let l = sign(p, &ca);
    let node = Node::new();
    node.trust(&format!("registry.test:{PORT}"), &ca.pem());
    (node, l)
}

#[test]
fn a_first_address_that_drops_syns_costs_its_share_of_the_deadline_not_the_pull() {
    let live: Vec<String> = (3..=16).map(|i| format!("10.77.0.{i}")).collect();
    let mut addrs = vec!["10.77.0.2"];
    addrs.extend(live.iter().map(String::as_str));
    let ns = NetNs::new("v4", &addrs);
    let (node, l) = setup();
    let _reg = ns.registry(&l);
    let ctrd = Containerd::start();
    for runtime in ["containerd", "crio"] {
        let (run, connect) = regtrust_in(&ns, node.root.path(), runtime, 6);
        assert!(run.ok(), "{runtime}: {}\n{}", run.stdout, run.stderr);
        assert!(
            (1950.0..3500.0).contains(&connect),
            "{runtime}: connect took {connect} ms, not the dead address's 2 s share: {}",
            run.stdout
        );
    }
    let (skopeo, ctr) = runtimes_in(&ns, &node, &ctrd);
    assert!(skopeo.status.success(), "skopeo: {}", out(&skopeo));
    assert!(ctr.status.success(), "ctr: {}", out(&ctr));
}

#[test]
fn a_dead_ipv6_first_address_falls_back_to_ipv4_after_300_ms() {
    require("ip6tables");
    let ns = NetNs::new("v6", &["2001:db8::2", LIVE]);
    let (node, l) = setup();
    let _reg = ns.registry(&l);
    let ctrd = Containerd::start();
    let (run, connect) = regtrust_in(&ns, node.root.path(), "containerd", 6);
    assert!(run.ok(), "{}\n{}", run.stdout, run.stderr);
    assert!(
        (280.0..2000.0).contains(&connect),
        "connect took {connect} ms, not Go's 300 ms fallback delay: {}",
        run.stdout
    );
    let (skopeo, ctr) = runtimes_in(&ns, &node, &ctrd);
    assert!(skopeo.status.success(), "skopeo: {}", out(&skopeo));
    assert!(ctr.status.success(), "ctr: {}", out(&ctr));
}

#[test]
fn every_address_dead_fails_with_the_first_addresses_error_as_the_runtimes_do() {
    // The only address drops SYNs: the whole deadline goes to it and the probe times out in the
    // connect phase (Go's `i/o timeout`), never a refusal or a DNS failure.
    let ns = NetNs::new("dead", &["10.77.0.2"]);
    let (node, _) = setup();
    let (run, _) = regtrust_in(&ns, node.root.path(), "crio", 3);
    assert!(!run.ok(), "{}", run.stdout);
    assert_eq!(run.reason(), "timeout", "{}", run.stdout);
}
