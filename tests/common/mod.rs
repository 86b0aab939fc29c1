//! Real parts for integration tests: certificates (rcgen, openssl for RSA-1024), the CNCF
//! `docker-registry` over TLS on loopback, a containerd daemon + `ctr`, `skopeo`, and the
//! `regtrust` binary. Every process is killed on drop; every wait is bounded.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

pub const IMAGE: &str = "demo/img:v1";

// === certificates ===

pub struct Issued {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issued {
    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

pub fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(n)
}

pub fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = days(-1);
    p.not_after = days(30);
    p
}

pub fn ca(cn: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    Issued {
        cert: ca_params(cn).self_signed(&key).unwrap(),
        key,
    }
}

/// Serving-certificate parameters for 127.0.0.1 / localhost / registry.test.
pub fn leaf_params() -> CertificateParams {
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "registry.test".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = days(-1);
    p.not_after = days(20);
    p
}

pub fn sign(p: CertificateParams, issuer: &Issued) -> Issued {
    let key = KeyPair::generate().unwrap();
    Issued {
        cert: p.signed_by(&key, &issuer.cert, &issuer.key).unwrap(),
        key,
    }
}

pub fn leaf(issuer: &Issued) -> Issued {
    sign(leaf_params(), issuer)
}

/// A leaf for 127.0.0.1 issued by `issuer` with what rcgen will not write (built and signed
/// with OpenSSL): `serial` (decimal, may be negative) and `exts` (OID, critical, DER value) after
/// the usual basic constraints, EKU and SAN — which `san` replaces when given. Returns the
/// certificate and key PEM.
pub fn crafted_leaf(
    issuer: &Issued,
    serial: &str,
    san: Option<&[u8]>,
    exts: &[(&str, bool, Vec<u8>)],
) -> (String, String) {
    let issuer = (issuer.pem(), issuer.key.serialize_pem());
    crafted_leaf_by(&issuer, serial, san, exts)
}

/// [`crafted_leaf`] issued by a CA given as (certificate PEM, key PEM), for keys rcgen cannot
/// load (RSA-512).
pub fn crafted_leaf_by(
    issuer: &(String, String),
    serial: &str,
    san: Option<&[u8]>,
    exts: &[(&str, bool, Vec<u8>)],
) -> (String, String) {
    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::x509::{X509Builder, X509Extension, X509NameBuilder, X509};
    let ca_key = openssl::pkey::PKey::private_key_from_pem(issuer.1.as_bytes()).unwrap();
    let ca = X509::from_pem(issuer.0.as_bytes()).unwrap();
    let key = openssl::pkey::PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "127.0.0.1").unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_dec_str(serial).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(20).unwrap())
        .unwrap();
    b.set_pubkey(&key).unwrap();
    // basicConstraints CA:FALSE; EKU serverAuth; SAN IP:127.0.0.1 unless replaced.
    let ip_san = [0x30, 0x06, 0x87, 0x04, 127, 0, 0, 1];
    let eku = [
        0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
    ];
    let usual: [(&str, bool, Vec<u8>); 3] = [
        ("2.5.29.19", true, vec![0x30, 0x00]),
        ("2.5.29.37", false, eku.to_vec()),
        ("2.5.29.17", false, san.unwrap_or(&ip_san).to_vec()),
    ];
    for (oid, critical, value) in usual.iter().chain(exts) {
        let ext = X509Extension::new_from_der(
            &Asn1Object::from_str(oid).unwrap(),
            *critical,
            &Asn1OctetString::new_from_bytes(value).unwrap(),
        )
        .unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(&ca_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let cert = b.build().to_pem().unwrap();
    let key = key.private_key_to_pem_pkcs8().unwrap();
    (
        String::from_utf8(cert).unwrap(),
        String::from_utf8(key).unwrap(),
    )
}

/// A self-signed RSA CA of `bits` bits with serial number `serial` (decimal, may be negative)
/// made by OpenSSL: (certificate PEM, key PEM).
pub fn openssl_rsa_ca(cn: &str, bits: u32, serial: &str) -> (String, String) {
    use openssl::x509::{X509Builder, X509Extension, X509NameBuilder};
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(bits).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_dec_str(serial).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(20).unwrap())
        .unwrap();
    b.set_pubkey(&key).unwrap();
    #[allow(deprecated)]
    let bc = X509Extension::new_nid(
        None,
        None,
        openssl::nid::Nid::BASIC_CONSTRAINTS,
        "critical,CA:TRUE",
    )
    .unwrap();
    b.append_extension(bc).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    (
        String::from_utf8(b.build().to_pem().unwrap()).unwrap(),
        String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    )
}

// === stunnel: a TLS front that presents what Go would not load ===

/// stunnel (OpenSSL) on a free port presenting `cert_pem`/`key_pem` in front of a plain-HTTP
/// registry: for certificates the Go registry itself refuses to serve.
pub struct Stunnel {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    pub fn start(cert_pem: &str, key_pem: &str, backend: &Registry) -> Stunnel {
        require("stunnel4");
        let dir = tmp();
        let port = free_port();
        write(&dir.path().join("c.pem"), cert_pem);
        write(&dir.path().join("k.pem"), key_pem);
        let cfg = format!(
            "foreground = yes\npid =\n[front]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{}\ncert = {}\nkey = {}\n",
            backend.port,
            dir.path().join("c.pem").display(),
            dir.path().join("k.pem").display()
        );
        write(&dir.path().join("s.conf"), cfg);
        let log = fs::File::create(dir.path().join("stunnel.log")).unwrap();
        let mut child = Command::new("stunnel4")
            .arg(dir.path().join("s.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start stunnel4");
        if let Ok(Some(status)) = child.try_wait().and_then(|_| {
            std::thread::sleep(Duration::from_millis(300));
            child.try_wait()
        }) {
            let log = fs::read_to_string(dir.path().join("stunnel.log")).unwrap_or_default();
            panic!("stunnel4 exited with {status}: {log}");
        }
        wait_port(port, &mut child, "stunnel4");
        Stunnel {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS server (rustls, which presents certificates without parsing them) that only
/// handshakes: for certificates neither Go nor OpenSSL would load, which every client refuses
/// before a byte of HTTP.
pub struct HandshakeOnly {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HandshakeOnly {
    pub fn start(cert_pem: &str, key_pem: &str) -> HandshakeOnly {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use rustls::server::{ClientHello, ResolvesServerCert};
        use rustls::sign::CertifiedKey;
        use std::sync::{atomic::AtomicBool, atomic::Ordering, Arc};
        #[derive(Debug)]
        struct Fixed(Arc<CertifiedKey>);
        impl ResolvesServerCert for Fixed {
            fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
                Some(self.0.clone())
            }
        }
        let block = |pem: &str| regtrust::pem::decode_all(pem.as_bytes()).remove(0).bytes;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block(key_pem)));
        let signing = provider.key_provider.load_private_key(key).unwrap();
        let certified = CertifiedKey::new(vec![CertificateDer::from(block(cert_pem))], signing);
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Fixed(Arc::new(certified)))),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        break;
                    }
                }
            }
        });
        HandshakeOnly {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for HandshakeOnly {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === HTTP ===

/// A plain-HTTP client for loopback. reqwest's rustls backend (regtrust fetches `expected_ca_url`
/// with it) needs a process-wide crypto provider when a client is built without a TLS config of
/// its own: install aws-lc-rs first, as the binary does. Use this rather than `Client::new()`.
pub fn http_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

// === temp dirs ===

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rt-it-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

pub fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// A port on 127.0.0.1 that nothing listens on now, for a child process to bind. Below the
/// kernel's ephemeral range (32768-60999), so a listener that another test binds to port 0 — or a
/// client's source port — can never take it between this check and the child's bind (a registry
/// that lost that race left skopeo talking to another test's server); ports are handed out in
/// turn from a start that differs per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

/// Polls until 127.0.0.1:port accepts TCP (at most ~10 s).
pub fn wait_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    // Generous: a loaded 2-core machine starts Prometheus slowly. A bound, not a benchmark.
    while start.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

pub fn require(bin: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{bin} is not installed: run the README's test command (scripts/test), which installs it"
    );
}

// === docker-registry ===

pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serves `chain` (leaf first) with `key`; plain HTTP when `chain` is empty.
    pub fn start(chain: &[&rcgen::Certificate], key: Option<&KeyPair>) -> Registry {
        let tls = key.map(|k| {
            (
                chain.iter().map(|c| c.pem()).collect::<String>(),
                k.serialize_pem(),
            )
        });
        Self::start_with_storage(tls, &seeded_storage())
    }

    /// Stops this registry and serves `chain` on the same port (the registry reads its
    /// certificate only at start).
    pub fn restart_with(self, chain: &[&rcgen::Certificate], key: &KeyPair) -> Registry {
        let port = self.port;
        drop(self);
        let tls = Some((
            chain.iter().map(|c| c.pem()).collect::<String>(),
            key.serialize_pem(),
        ));
        Self::start_on(tls, &seeded_storage(), port)
    }

    /// Serves a PEM chain and PEM key (for keys rcgen cannot make, e.g. RSA-1024).
    pub fn start_pem(chain_pem: String, key_pem: String) -> Registry {
        Self::start_with_storage(Some((chain_pem, key_pem)), &seeded_storage())
    }

    /// Plain HTTP, no TLS.
    pub fn start_plain() -> Registry {
        Self::start_with_storage(None, &seeded_storage())
    }

    fn start_with_storage(tls: Option<(String, String)>, storage: &Path) -> Registry {
        Self::start_on(tls, storage, free_port())
    }

    fn start_on(tls: Option<(String, String)>, storage: &Path, port: u16) -> Registry {
        Self::start_full(tls, None, storage, port)
    }

    /// TLS that requires a client certificate issued by `client_ca_pem`.
    pub fn start_mtls(
        chain: &[&rcgen::Certificate],
        key: &KeyPair,
        client_ca_pem: &str,
    ) -> Registry {
        let tls = Some((
            chain.iter().map(|c| c.pem()).collect::<String>(),
            key.serialize_pem(),
        ));
        Self::start_full(tls, Some(client_ca_pem), &seeded_storage(), free_port())
    }

    fn start_full(
        tls: Option<(String, String)>,
        client_ca: Option<&str>,
        storage: &Path,
        port: u16,
    ) -> Registry {
        require("docker-registry");
        let dir = tmp();
        let tls = if let Some((pem, key)) = tls {
            write(&dir.path().join("srv.pem"), pem);
            write(&dir.path().join("srv.key"), key);
            let clientcas = match client_ca {
                Some(ca) => {
                    write(&dir.path().join("client-ca.pem"), ca);
                    format!(", clientcas: [{}/client-ca.pem]", dir.path().display())
                }
                None => String::new(),
            };
            format!(
                ", tls: {{certificate: {0}/srv.pem, key: {0}/srv.key{clientcas}}}",
                dir.path().display()
            )
        } else {
            String::new()
        };
        let cfg = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}, secret: test{tls}}}\n",
            storage.display()
        );
        write(&dir.path().join("config.yml"), cfg);
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_port(port, &mut child, "docker-registry");
        Registry {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry storage directory holding `demo/img:v1`, pushed once per test binary by real skopeo.
pub fn seeded_storage() -> PathBuf {
    static STORAGE: OnceLock<PathBuf> = OnceLock::new();
    STORAGE
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("registry-storage-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root).unwrap();
            let ca = ca("seed-ca");
            let l = leaf(&ca);
            let reg = Registry::start_with_storage(Some((l.pem(), l.key.serialize_pem())), &root);
            let work = tmp();
            let layout = work.path().join("oci");
            build_oci_layout(&layout);
            let certs = work.path().join("certs");
            write(&certs.join("ca.crt"), ca.pem());
            write(
                &work.path().join("policy.json"),
                r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
            );
            let out = Command::new("skopeo")
                .args(["copy", "--quiet", "--policy"])
                .arg(work.path().join("policy.json"))
                .arg("--dest-cert-dir")
                .arg(&certs)
                .arg(format!("oci:{}:v1", layout.display()))
                .arg(format!("docker://{}/{IMAGE}", reg.addr()))
                .envs(isolated_system_roots(work.path()))
                .output()
                .expect("run skopeo copy");
            assert!(
                out.status.success(),
                "seeding the registry failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            root
        })
        .clone()
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", regtrust::cert::sha256_hex(data))
}

/// A one-layer OCI image layout, deterministic, built with tar and gzip.
fn build_oci_layout(dir: &Path) {
    let src = dir.with_extension("src");
    write(&src.join("hello.txt"), "hello from regtrust tests\n");
    let tar = dir.with_extension("tar");
    let st = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let tar_bytes = fs::read(&tar).unwrap();
    let gz = Command::new("gzip")
        .args(["-n", "-c"])
        .arg(&tar)
        .output()
        .unwrap()
        .stdout;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = digest(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        (d, data.len())
    };
    let (layer_d, layer_n) = put(&gz);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
        digest(&tar_bytes)
    );
    let (cfg_d, cfg_n) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg_d}","size":{cfg_n}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_d}","size":{layer_n}}}]}}"#
    );
    let (man_d, man_n) = put(manifest.as_bytes());
    write(
        &dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{man_d}","size":{man_n},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    );
    write(&dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#);
}

/// Environment that gives a Go program the system pool of `host_root` instead of this machine's
/// (which sets SSL_CERT_FILE globally).
pub fn isolated_system_roots(host_root: &Path) -> Vec<(String, String)> {
    vec![
        (
            "SSL_CERT_FILE".into(),
            host_root
                .join("etc/ssl/certs/ca-certificates.crt")
                .display()
                .to_string(),
        ),
        (
            "SSL_CERT_DIR".into(),
            host_root.join("etc/ssl/certs").display().to_string(),
        ),
    ]
}

// === runtimes ===

/// The installed containerd's version (read from its binary as regtrust reads it), for
/// `--runtime-version`: regtrust follows the rules of the release the oracle runs.
pub fn oracle_containerd_version() -> String {
    use regtrust::trust::runtime_version::{detect, Overrides};
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let (info, _) = detect(
                &regtrust::hostroot::HostRoot::new("/"),
                Path::new("/nonexistent-proc"),
                regtrust::trust::Runtime::Containerd,
                &Overrides::default(),
            );
            info.version.expect("the installed containerd's version")
        })
        .clone()
}

/// A containerd daemon of our own (no CRI), for `ctr --hosts-dir` pulls.
pub struct Containerd {
    pub sock: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        require("containerd");
        let dir = tmp();
        let sock = dir.path().join("containerd.sock");
        let cfg = format!(
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n",
            dir.path().display(),
            sock.display()
        );
        write(&dir.path().join("config.toml"), cfg);
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let start = Instant::now();
        while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            sock.exists(),
            "containerd did not create its socket within 10 s"
        );
        Containerd {
            sock,
            child,
            _dir: dir,
        }
    }

    /// `ctr content fetch --hosts-dir` of IMAGE from `registry`: the containerd verdict.
    pub fn fetch(&self, hosts_dir: &Path, host_root: &Path, registry: &str) -> Output {
        self.fetch_ref(hosts_dir, host_root, &format!("{registry}/{IMAGE}"))
    }

    /// `ctr content fetch --hosts-dir` of `reference` (a tag or a digest reference).
    pub fn fetch_ref(&self, hosts_dir: &Path, host_root: &Path, reference: &str) -> Output {
        self.fetch_env(hosts_dir, host_root, reference, &[])
    }

    /// [`Containerd::fetch_ref`] with more environment for ctr, which resolves and fetches
    /// itself (e.g. `GODEBUG`).
    pub fn fetch_env(
        &self,
        hosts_dir: &Path,
        host_root: &Path,
        reference: &str,
        env: &[(&str, &str)],
    ) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("ctr")
            .arg("-a")
            .arg(&self.sock)
            .args(["-n", "test", "content", "fetch", "--hosts-dir"])
            .arg(hosts_dir)
            .arg(reference)
            .envs(isolated_system_roots(host_root))
            .envs(env.iter().copied())
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo inspect --cert-dir`: the containers/image (CRI-O, podman) verdict.
pub fn skopeo_inspect(cert_dir: &Path, host_root: &Path, registry: &str) -> Output {
    skopeo_inspect_env(cert_dir, host_root, registry, &[])
}

/// [`skopeo_inspect`] with more environment (e.g. `GODEBUG`).
pub fn skopeo_inspect_env(
    cert_dir: &Path,
    host_root: &Path,
    registry: &str,
    env: &[(&str, &str)],
) -> Output {
    require("skopeo");
    Command::new("timeout")
        .arg("60")
        .arg("skopeo")
        .args(["inspect", "--retry-times", "0", "--cert-dir"])
        .arg(cert_dir)
        .arg(format!("docker://{registry}/{IMAGE}"))
        .envs(isolated_system_roots(host_root))
        .envs(env.iter().copied())
        .output()
        .expect("run skopeo")
}

// === regtrust ===

pub struct Run {
    pub code: i32,
    pub json: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn registry(&self, i: usize) -> &serde_json::Value {
        &self.json["registries"][i]
    }
    pub fn reason(&self) -> String {
        self.registry(0)["reason"]
            .as_str()
            .unwrap_or("<none>")
            .to_string()
    }
    pub fn ok(&self) -> bool {
        self.registry(0)["ok"].as_bool().unwrap_or(false)
    }
}

pub fn regtrust(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regtrust"));
    cmd.args(args);
    let out = cmd.output().expect("run regtrust");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// `check --host-root ROOT --output json --timeout SECS`: the start of every JSON check.
pub fn check_args(host_root: &Path, timeout_secs: u32) -> Vec<String> {
    let root = host_root.display().to_string();
    let timeout = timeout_secs.to_string();
    [
        "check",
        "--host-root",
        &root,
        "--output",
        "json",
        "--timeout",
        &timeout,
    ]
    .map(String::from)
    .to_vec()
}

pub fn check_json(host_root: &Path, extra: &[&str], registry: &str) -> Run {
    let mut args = check_args(host_root, 5);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(registry.to_string());
    regtrust(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A node: a host root with a containerd hosts dir and a containers certs.d for one registry.
pub struct Node {
    pub root: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        let root = tmp();
        fs::create_dir_all(root.path().join("etc/ssl/certs")).unwrap();
        Node { root }
    }
    pub fn path(&self, node_path: &str) -> PathBuf {
        self.root.path().join(node_path.trim_start_matches('/'))
    }
    pub fn hosts_dir(&self) -> PathBuf {
        self.path("/etc/containerd/certs.d")
    }
    /// Trusts `ca_pem` for `registry` the standard way in both runtimes' directories: containerd
    /// hosts.toml with an https `[host]` table and `server` (both with `ca`), and a
    /// containers/image `ca.crt`.
    pub fn trust(&self, registry: &str, ca_pem: &str) {
        let d = self.hosts_dir().join(registry);
        write(&d.join("ca.crt"), ca_pem);
        write(
            &d.join("hosts.toml"),
            format!("server = \"https://{registry}\"\nca = \"ca.crt\"\n\n[host.\"https://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"),
        );
        write(&self.containers_dir(registry).join("ca.crt"), ca_pem);
    }
    /// After [`Node::trust`]: `client` presented where each runtime reads a pair — containerd's
    /// hosts.toml `client` (root and `[host]`), containers/image's `client.cert`/`client.key`.
    pub fn present_client(&self, registry: &str, client: &Issued) {
        let d = self.hosts_dir().join(registry);
        write(&d.join("client.cert"), client.pem());
        write(&d.join("client.key"), client.key.serialize_pem());
        write(
            &d.join("hosts.toml"),
            format!("server = \"https://{registry}\"\nca = \"ca.crt\"\nclient = [[\"client.cert\", \"client.key\"]]\n\n[host.\"https://{registry}\"]\n  ca = \"ca.crt\"\n  client = [[\"client.cert\", \"client.key\"]]\n"),
        );
        let c = self.containers_dir(registry);
        write(&c.join("client.cert"), client.pem());
        write(&c.join("client.key"), client.key.serialize_pem());
    }
    pub fn containers_dir(&self, registry: &str) -> PathBuf {
        self.path("/etc/containers/certs.d").join(registry)
    }
    pub fn append_file(&self, node_path: &str, data: &str) {
        let p = self.path(node_path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(data.as_bytes()).unwrap();
    }
}

// === a private mount namespace where registry.test is 127.0.0.1 ===

pub struct Ns {
    hosts: tempfile::TempDir,
}

impl Ns {
    pub fn new() -> Ns {
        require("unshare");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        assert!(
            root,
            "these tests need root for a private mount namespace (CI runs as root)"
        );
        let hosts = tmp();
        write(
            &hosts.path().join("hosts"),
            "127.0.0.1 localhost registry.test\n",
        );
        Ns { hosts }
    }

    /// `program args…` run with registry.test → 127.0.0.1.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        ])
        .arg(self.hosts.path().join("hosts"))
        .arg(program);
        c
    }
}

// === the agent ===

/// A running `regtrust run`, killed on drop.
pub struct AgentProc {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    /// The `--config` file.
    pub config: PathBuf,
}

impl AgentProc {
    /// Starts `regtrust run --config <cfg>` where `cfg` is TOML without `listen` (added here).
    pub fn start(dir: &Path, cfg: &str) -> AgentProc {
        Self::start_on(dir, cfg, "127.0.0.1")
    }

    /// The same, listening on `ip` (a loopback address: 127.0.0.1, 127.0.1.2, …).
    pub fn start_on(dir: &Path, cfg: &str, ip: &str) -> AgentProc {
        Self::start_with(dir, cfg, ip, Command::new(env!("CARGO_BIN_EXE_regtrust")))
    }

    /// The same, with `cmd` as the program (e.g. `unshare … regtrust`); `run --config …` is added.
    pub fn start_with(dir: &Path, cfg: &str, ip: &str, cmd: Command) -> AgentProc {
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("{ip}:{port}");
        let path = dir.join(format!("agent-{port}.toml"));
        Self::spawn(dir, &path, addr, cfg, cmd)
    }

    /// Starts with the config written at `config` (through any symlinks the test laid there).
    pub fn start_at(dir: &Path, config: &Path, cfg: &str) -> AgentProc {
        let port = free_port();
        let cmd = Command::new(env!("CARGO_BIN_EXE_regtrust"));
        Self::spawn(dir, config, format!("127.0.0.1:{port}"), cfg, cmd)
    }

    fn spawn(dir: &Path, path: &Path, addr: String, cfg: &str, mut cmd: Command) -> AgentProc {
        write(path, format!("listen = \"{addr}\"\n{cfg}"));
        let port = addr.rsplit(':').next().unwrap_or_default().to_string();
        let log = dir.join(format!("agent-{port}.log"));
        let child = cmd
            .args(["run", "--config"])
            .arg(path)
            .env("REGTRUST_LOG", "regtrust=debug")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start regtrust run");
        let mut a = AgentProc {
            child,
            addr,
            log,
            config: path.to_path_buf(),
        };
        // A TLS listener is waited for by the test itself (with its CA).
        if !cfg.contains("tls_cert_file") {
            a.wait_until("agent /healthz", Duration::from_secs(20), |a| {
                a.get("/healthz").map(|(c, _)| c == 200).unwrap_or(false)
            });
        }
        a
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = http_client()
            .get(format!("http://{}{path}", self.addr))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().ok()?))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, t)| t).unwrap_or_default()
    }

    /// Polls `cond` every 50 ms until it holds; panics with the agent's log after `limit`.
    pub fn wait_until(&mut self, what: &str, limit: Duration, cond: impl Fn(&AgentProc) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond(self) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "agent exited ({st}) while waiting for {what}:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; metrics:\n{}\nlog:\n{}",
            self.metrics(),
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Writes the config file again (same listen address), as `cfg` plus that line.
    pub fn rewrite(&self, cfg: &str) {
        write(&self.config, format!("listen = \"{}\"\n{cfg}", self.addr));
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first series of `name` whose labels contain every `label="value"` given.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// === a PKI publishing its CA ===

/// An HTTPS server on 127.0.0.1 that answers every request with its current body, as a Vault PKI's
/// `/v1/pki/ca/pem` or step-ca's `/roots.pem` does; served with `leaf`, one connection at a time,
/// every read and write bounded. Stopped on drop.
pub struct PkiServer {
    pub port: u16,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PkiServer {
    pub fn start(leaf: &Issued, body: impl Into<Vec<u8>>) -> PkiServer {
        use std::sync::{atomic::AtomicBool, Arc, Mutex};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf.key.serialize_der()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.cert.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(body.into()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, st) = (body.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let answer = b.lock().unwrap().clone();
                        pki_answer(tcp, config.clone(), &answer);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        });
        PkiServer {
            port,
            body,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// What every later request gets.
    pub fn set_body(&self, body: impl Into<Vec<u8>>) {
        *self.body.lock().unwrap() = body.into();
    }
}

fn pki_answer(tcp: TcpStream, config: std::sync::Arc<rustls::ServerConfig>, body: &[u8]) {
    use std::io::Read;
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pem-certificate-chain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    let _ = tls.write_all(&out);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for PkiServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === prometheus ===

/// A real Prometheus on 127.0.0.1 with `config` (prom.yml) and any extra files in its own dir.
pub struct Prometheus {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        require("prometheus");
        let dir = tmp();
        write(&dir.path().join("prom.yml"), config);
        for (name, data) in files {
            write(&dir.path().join(name), data);
        }
        let port = free_port();
        let mut child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prom.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        wait_port(port, &mut child, "prometheus");
        Prometheus { port, child, dir }
    }

    /// GET an API path (bounded), as JSON; Null when it does not answer.
    pub fn api(&self, path_and_query: &str) -> serde_json::Value {
        http_client()
            .get(format!("http://127.0.0.1:{}{path_and_query}", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
