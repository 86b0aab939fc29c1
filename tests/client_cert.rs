//! Client certificates as Go loads and presents them, against a docker-registry that requires one
//! (`tls.clientcas`), with ctr (containerd) and skopeo (containers/image) as oracles: a pair whose
//! key is not the certificate's fails before dialling in each runtime's words; of several pairs
//! the one the server's acceptable CAs name is presented, and none when none fits.

mod common;

use common::*;

/// A client certificate for "node client" issued by `ca`.
fn client_of(ca: &Issued) -> Issued {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "node client");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    sign(p, ca)
}

/// Writes `pairs` (cert PEM, key PEM) where both runtimes read them: hosts.toml `client` in
/// this order, and certs.d `a.cert`/`a.key`, `b.cert`/`b.key`… (directory order).
fn install(node: &Node, addr: &str, pairs: &[(String, String)]) {
    let dir = node.hosts_dir().join(addr);
    let mut list = Vec::new();
    for (i, (cert, key)) in pairs.iter().enumerate() {
        let stem = char::from(b'a' + i as u8);
        write(&dir.join(format!("{stem}.pem")), cert);
        write(&dir.join(format!("{stem}-key.pem")), key);
        list.push(format!("[\"{stem}.pem\", \"{stem}-key.pem\"]"));
        let cd = node.containers_dir(addr);
        write(&cd.join(format!("{stem}.cert")), cert);
        write(&cd.join(format!("{stem}.key")), key);
    }
    write(
        &dir.join("hosts.toml"),
        format!(
            "[host.\"https://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n  client = [{}]\n",
            list.join(", ")
        ),
    );
}

struct Views {
    containerd: Run,
    crio: Run,
    ctr: std::process::Output,
    skopeo: std::process::Output,
}

fn views(node: &Node, ctrd: &Containerd, addr: &str) -> Views {
    let root = node.root.path();
    Views {
        containerd: check_json(root, &["--hosts-dir", "/etc/containerd/certs.d"], addr),
        crio: check_json(root, &["--runtime", "crio"], addr),
        ctr: ctrd.fetch(&node.hosts_dir(), root, addr),
        skopeo: skopeo_inspect(&node.containers_dir(addr), root, addr),
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).replace("\\\"", "\"")
}

fn detail(r: &Run) -> String {
    r.registry(0)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every view agrees on `ok`.
fn agree(what: &str, v: &Views, ok: bool) {
    assert_eq!(
        v.containerd.ok(),
        ok,
        "{what}: containerd view: {}",
        v.containerd.stdout
    );
    assert_eq!(v.crio.ok(), ok, "{what}: crio view: {}", v.crio.stdout);
    assert_eq!(
        v.ctr.status.success(),
        ok,
        "{what}: ctr: {}",
        stderr(&v.ctr)
    );
    assert_eq!(
        v.skopeo.status.success(),
        ok,
        "{what}: skopeo: {}",
        stderr(&v.skopeo)
    );
}

fn setup() -> (Registry, Node, Issued, String) {
    let ca = ca("registry.test");
    let l = leaf(&ca);
    let client_ca = common::ca("client CA");
    let reg = Registry::start_mtls(&[&l.cert], &l.key, &client_ca.pem());
    let node = Node::new();
    node.trust(&reg.addr(), &ca.pem());
    let addr = reg.addr();
    (reg, node, client_ca, addr)
}

fn pem_pair(i: &Issued) -> (String, String) {
    (i.pem(), i.key.serialize_pem())
}

#[test]
fn a_key_that_is_not_the_certificates_fails_before_dialling_in_each_runtimes_words() {
    let (_reg, node, client_ca, addr) = setup();
    let ctrd = Containerd::start();
    let good = client_of(&client_ca);
    let stranger = rcgen::KeyPair::generate().unwrap();
    install(&node, &addr, &[(good.pem(), stranger.serialize_pem())]);
    let v = views(&node, &ctrd, &addr);
    agree("mismatched key", &v, false);
    let go = "tls: private key does not match public key";
    let ctr_words = format!("failed to load X509 key pair: {go}");
    assert!(
        stderr(&v.ctr).contains(&ctr_words),
        "ctr: {}",
        stderr(&v.ctr)
    );
    assert!(
        stderr(&v.skopeo).contains(go),
        "skopeo: {}",
        stderr(&v.skopeo)
    );
    assert_eq!(
        v.containerd.reason(),
        "config_error",
        "{}",
        v.containerd.stdout
    );
    assert_eq!(detail(&v.containerd), ctr_words, "{}", v.containerd.stdout);
    assert_eq!(v.crio.reason(), "config_error", "{}", v.crio.stdout);
    assert_eq!(detail(&v.crio), go, "{}", v.crio.stdout);
    // Before dialling: no endpoint was probed, and the finding names both files.
    assert!(
        v.crio.stdout.contains("a.cert with") && v.crio.stdout.contains("a.key"),
        "{}",
        v.crio.stdout
    );
}

#[test]
fn of_several_pairs_the_one_the_server_names_a_ca_for_is_presented() {
    let (_reg, node, client_ca, addr) = setup();
    let ctrd = Containerd::start();
    let foreign = client_of(&common::ca("another client CA"));
    let good = client_of(&client_ca);
    // The foreign pair first: Go skips it (its issuer is not among the acceptable CAs).
    install(&node, &addr, &[pem_pair(&foreign), pem_pair(&good)]);
    let v = views(&node, &ctrd, &addr);
    agree("a foreign pair, then the right one", &v, true);

    // Two pairs the server names no CA for: Go sends no certificate at all.
    let other = client_of(&common::ca("a third client CA"));
    install(&node, &addr, &[pem_pair(&foreign), pem_pair(&other)]);
    let v = views(&node, &ctrd, &addr);
    agree("no pair fits", &v, false);
    assert_eq!(
        v.containerd.reason(),
        "handshake_failed",
        "{}",
        v.containerd.stdout
    );
}
