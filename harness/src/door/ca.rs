//! The door's certificate authority: one per server, generated into the data dir on first
//! start and loaded on every later one, which mints the leaf certificates the credential
//! injection ([`super::mitm`]) presents to the sandbox.
//!
//! Files (in the directory given to [`Authority::load_or_generate`], the data dir):
//! - `egress-ca.key`: the CA's private key (PKCS#8 PEM, ECDSA P-256), created with mode 0600
//!   and never copied anywhere;
//! - `egress-ca.pem`: its self-signed certificate (mode 0600: only the server reads it);
//! - `egress-ca-bundle.pem`: the host's system CAs followed by ours (public, mode 0644),
//!   rewritten at every start by [`Authority::write_trust_bundle`]; the sandbox binds it where
//!   Debian's tools look for their trust store (see `sandbox::Options::trust_bundle`).
//!
//! Leaf certificates are minted on demand for the destination host of an intercepted CONNECT
//! (a DNS name or an IP address as the only subject alternative name), valid for
//! [`LEAF_VALIDITY`] and cached in memory; a cached leaf older than [`LEAF_REFRESH`] is minted
//! again, and the cache is emptied when it holds [`MAX_LEAVES`]. All leaves of a process share
//! one key pair that lives only in memory: it protects nothing beyond the leaves themselves,
//! and generating one per host would only cost time. Each leaf gets a random serial number.
//!
//! The CA's issuer name is fixed ([`CA_NAME`]) so that the issuer rebuilt from the key on a
//! restart signs leaves that chain to the certificate written on the first start (rcgen derives
//! the issuer's name and key identifier from the parameters and the key, so nothing has to be
//! parsed back from the stored certificate).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// The CA key file in the data dir.
pub const KEY_FILE: &str = "egress-ca.key";
/// The CA certificate file in the data dir.
pub const CERT_FILE: &str = "egress-ca.pem";
/// The trust bundle (system CAs + ours) in the data dir.
pub const BUNDLE_FILE: &str = "egress-ca-bundle.pem";
/// Where Debian keeps the system's CA bundle.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The CA's common name (also its issuer name on every leaf).
pub const CA_NAME: &str = "managed-agents egress CA";
/// How long a minted leaf is valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// A cached leaf older than this is minted again.
pub const LEAF_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most leaves kept in memory.
pub const MAX_LEAVES: usize = 4096;
/// How long the CA certificate is valid (ten years).
const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// What can go wrong with the CA.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing one of the CA's files failed.
    #[error("egress CA file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A stored file is not what it should be.
    #[error("egress CA file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Generating a key or signing a certificate failed.
    #[error("egress CA: {0}")]
    Generate(String),
    /// The host is not a name or address a certificate can be made for.
    #[error("cannot mint a certificate for host {host:?}: {message}")]
    Host {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
}

struct Leaf {
    key: Arc<CertifiedKey>,
    minted: Instant,
}

/// The per-server CA. Cheap to share behind an `Arc`; minting takes a short lock.
pub struct Authority {
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaf_key: KeyPair,
    leaf_signer: Arc<dyn rustls::sign::SigningKey>,
    leaves: Mutex<HashMap<String, Leaf>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority(..)")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn generate(e: rcgen::Error) -> Error {
    Error::Generate(e.to_string())
}

fn offset_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The CA's parameters. Only the name, key identifier method and key usages enter the issuer
/// rebuilt on a restart; they never change.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "managed-agents");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = offset_now();
    params.not_before = now - Duration::from_secs(24 * 3600);
    params.not_after = now + CA_VALIDITY;
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Writes `contents` to `path` through a temporary file and a rename, with `mode`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    // The umask may have narrowed the mode at creation.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A host as it goes into a certificate: lower case, no trailing dot, no IPv6 brackets.
fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl Authority {
    /// The CA whose files are in `dir`, generated (key and certificate 0600) when there is
    /// no key yet. A certificate missing next to an existing key is made again from the key.
    pub fn load_or_generate(dir: &Path) -> Result<Self, Error> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => {
                let key = KeyPair::from_pem(&pem).map_err(|e| Error::Invalid {
                    path: key_path.clone(),
                    message: format!("not a private key: {e}"),
                })?;
                let mode = std::fs::metadata(&key_path)
                    .map_err(io(&key_path))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io(&key_path))?;
                    tracing::warn!(path = %key_path.display(), "the egress CA key was readable by others; it is now 0600");
                }
                key
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let key = KeyPair::generate().map_err(generate)?;
                let _ = std::fs::remove_file(&cert_path);
                write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
                tracing::info!(path = %key_path.display(), "generated the egress CA");
                key
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        let certificate_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = ca_params().self_signed(&key).map_err(generate)?.pem();
                write_atomically(&cert_path, pem.as_bytes(), 0o600)?;
                pem
            }
            Err(e) => return Err(io(&cert_path)(e)),
        };
        let certificate_der =
            CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|e| {
                Error::Invalid {
                    path: cert_path.clone(),
                    message: format!("not a PEM certificate: {e}"),
                }
            })?;
        Self::new(key, certificate_pem, certificate_der)
    }

    /// A CA that lives only in memory (for tests and `--storage memory`).
    pub fn ephemeral() -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(generate)?;
        let certificate = ca_params().self_signed(&key).map_err(generate)?;
        let der = certificate.der().clone();
        Self::new(key, certificate.pem(), der)
    }

    fn new(
        key: KeyPair,
        certificate_pem: String,
        certificate_der: CertificateDer<'static>,
    ) -> Result<Self, Error> {
        let leaf_key = KeyPair::generate().map_err(generate)?;
        let leaf_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let leaf_signer = rustls::crypto::ring::sign::any_ecdsa_type(&leaf_der)
            .map_err(|e| Error::Generate(e.to_string()))?;
        Ok(Self {
            certificate_pem,
            certificate_der,
            issuer: Issuer::new(ca_params(), key),
            leaf_key,
            leaf_signer,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM), for trust stores.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// The certificate and key to present for `host` (cached; minted when absent or old).
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, Error> {
        let host = normal_host(host);
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(leaf) = leaves.get(&host) {
            if leaf.minted.elapsed() < LEAF_REFRESH {
                return Ok(leaf.key.clone());
            }
        }
        let key = Arc::new(self.mint(&host)?);
        if leaves.len() >= MAX_LEAVES {
            leaves.clear();
        }
        leaves.insert(
            host,
            Leaf {
                key: key.clone(),
                minted: Instant::now(),
            },
        );
        Ok(key)
    }

    fn mint(&self, host: &str) -> Result<CertifiedKey, Error> {
        let bad = |message: String| Error::Host {
            host: host.to_owned(),
            message,
        };
        if host.is_empty() {
            return Err(bad("empty".into()));
        }
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(|e| bad(format!("{e}")))?),
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, host);
        params.distinguished_name = name;
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let now = offset_now();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + LEAF_VALIDITY;
        let certificate = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| bad(e.to_string()))?;
        Ok(CertifiedKey::new(
            vec![certificate.der().clone()],
            self.leaf_signer.clone(),
        ))
    }

    /// Writes `<dir>/egress-ca-bundle.pem` (mode 0644): the certificates of `system` (the
    /// host's bundle, usually [`SYSTEM_BUNDLE`]; skipped when absent) followed by this CA.
    /// Returns its path.
    pub fn write_trust_bundle(&self, dir: &Path, system: &Path) -> Result<PathBuf, Error> {
        let mut bundle = match std::fs::read(system) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(system)(e)),
        };
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(b"# managed-agents egress CA (credential injection)\n");
        bundle.extend_from_slice(self.certificate_pem.as_bytes());
        let path = dir.join(BUNDLE_FILE);
        write_atomically(&path, &bundle, 0o644)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn generated_once_with_a_private_key_and_a_public_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Authority::load_or_generate(dir.path()).expect("generate");
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join(CERT_FILE)), 0o600);
        let again = Authority::load_or_generate(dir.path()).expect("load");
        assert_eq!(first.certificate_pem(), again.certificate_pem());
        let key = std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("key");
        assert!(key.contains("PRIVATE KEY"));
        assert!(!first.certificate_pem().contains("PRIVATE KEY"));
    }

    #[test]
    fn leaves_are_cached_per_host_and_refused_for_bad_hosts() {
        let ca = Authority::ephemeral().expect("ca");
        let a = ca.leaf("Example.COM.").expect("leaf");
        let b = ca.leaf("example.com").expect("leaf");
        assert!(Arc::ptr_eq(&a, &b));
        let c = ca.leaf("other.example").expect("leaf");
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(ca.leaf("127.0.0.1").is_ok());
        assert!(ca.leaf("[::1]").is_ok());
        assert!(ca.leaf("").is_err());
        assert!(ca.leaf("bad host\u{e9}").is_err());
    }

    #[test]
    fn the_bundle_holds_the_system_certificates_and_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Authority::load_or_generate(dir.path()).expect("ca");
        let system = dir.path().join("system.pem");
        std::fs::write(&system, "SYSTEM CERTS").expect("write");
        let bundle = ca.write_trust_bundle(dir.path(), &system).expect("bundle");
        let text = std::fs::read_to_string(&bundle).expect("read");
        assert!(text.starts_with("SYSTEM CERTS\n"));
        assert!(text.ends_with(ca.certificate_pem()));
        assert_eq!(mode(&bundle), 0o644);
        let none = ca
            .write_trust_bundle(dir.path(), &dir.path().join("absent"))
            .expect("bundle");
        assert!(std::fs::read_to_string(none)
            .expect("read")
            .contains(ca.certificate_pem()));
    }
}
