//! Test certificates with what rcgen will not write: negative serials, duplicate or arbitrary
//! extensions, small RSA keys (built and signed with OpenSSL).

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Builder, X509Extension, X509NameBuilder};

/// What to put in a test certificate.
pub(crate) struct Spec {
    pub serial: &'static str,
    /// (OID, critical, DER of the extension value).
    pub exts: Vec<(&'static str, bool, Vec<u8>)>,
    /// RSA key of this size instead of P-256.
    pub rsa_bits: Option<u32>,
    /// Present an RSA public key with a modulus of this many bits (not a real key: the
    /// certificate is signed with another), for sizes too slow to generate.
    pub fake_rsa_public_bits: Option<u32>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            serial: "1",
            exts: Vec::new(),
            rsa_bits: None,
            fake_rsa_public_bits: None,
        }
    }
}

/// A self-signed certificate for `CN=t` following `spec`, as DER.
pub(crate) fn der(spec: &Spec) -> Vec<u8> {
    let key: PKey<Private> = match spec.rsa_bits {
        Some(bits) => PKey::from_rsa(openssl::rsa::Rsa::generate(bits).unwrap()).unwrap(),
        None => {
            let group =
                openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
        }
    };
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "t").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_dec_str(spec.serial).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    match spec.fake_rsa_public_bits {
        Some(bits) => {
            let mut n = BigNum::new().unwrap();
            n.rand(bits as i32, openssl::bn::MsbOption::ONE, true)
                .unwrap();
            let e = BigNum::from_u32(65537).unwrap();
            let rsa = openssl::rsa::Rsa::from_public_components(n, e).unwrap();
            b.set_pubkey(&PKey::from_rsa(rsa).unwrap()).unwrap();
        }
        None => b.set_pubkey(&key).unwrap(),
    }
    for (oid, critical, value) in &spec.exts {
        let oid = Asn1Object::from_str(oid).unwrap();
        let value = Asn1OctetString::new_from_bytes(value).unwrap();
        let ext = X509Extension::new_from_der(&oid, *critical, &value).unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

/// DER of one TLV.
pub(crate) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        n if n < 128 => out.push(n as u8),
        n if n < 256 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(body);
    out
}

/// A subjectAltName value holding `names` (each a whole GeneralName TLV).
pub(crate) fn san(names: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &names.concat())
}
