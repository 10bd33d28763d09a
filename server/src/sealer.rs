//! [`Sealer`]: secrets at rest. Vault credential secrets and GitHub tokens are sealed with
//! XChaCha20-Poly1305 under one 32-byte server key into core's [`SealedSecret`], which the
//! credential and session records carry (never rendered, never in a public event). The key
//! comes from `--secret-key` / `MANAGED_AGENTS_SECRET_KEY` (64 hex digits or base64 of 32
//! bytes) or is generated once into `<data-dir>/secret.key` with mode 0600.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use managed_agents_core::vault::SealedSecret;

const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "secret.key";

/// What can go wrong with the sealing key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured key is not 32 bytes in hex or base64.
    #[error("the secret key must be 64 hex digits or base64 of 32 bytes")]
    BadKey,
    /// Reading or writing the key file failed.
    #[error("secret key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The OS random source failed.
    #[error("no randomness available")]
    Random,
    /// A sealed value did not open (wrong key or corrupted).
    #[error("a stored secret could not be decrypted (wrong secret key?)")]
    Open,
}

/// The server's sealing key: seals secrets for the store and opens them for the runner.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn parse_key(text: &str) -> Result<[u8; 32], Error> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| Error::BadKey))
            .collect::<Result<Vec<u8>, Error>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| Error::BadKey)?
    };
    bytes.try_into().map_err(|_| Error::BadKey)
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| Error::Random)?;
    Ok(bytes)
}

impl Sealer {
    /// From key text (64 hex digits or base64 of 32 bytes).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        Ok(Self::from_bytes(parse_key(text)?))
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// A random key that lives only as long as the process (for `--storage memory`).
    pub fn ephemeral() -> Result<Self, Error> {
        Ok(Self::from_bytes(random()?))
    }

    /// The key in `<dir>/secret.key`, generated with mode 0600 if absent.
    pub fn load_or_generate(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(KEY_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_text(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let key: [u8; 32] = random()?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(hex.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self::from_bytes(key))
    }

    /// Encrypts `plaintext` as `nonce || ciphertext`.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .map_err(|_| Error::Random)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// Seals a text secret for core's records (`SealedSecret`): base64 of `nonce || ciphertext`.
    /// Randomness failing is the only error; then the secret is not stored (empty ciphertext)
    /// and the failure is logged.
    pub fn seal_text(&self, plaintext: &str) -> SealedSecret {
        match self.seal(plaintext.as_bytes()) {
            Ok(sealed) => SealedSecret(base64::engine::general_purpose::STANDARD.encode(sealed)),
            Err(err) => {
                tracing::error!(error = %err, "sealing a secret failed");
                SealedSecret(String::new())
            }
        }
    }

    /// Opens a `SealedSecret` made by [`Sealer::seal_text`].
    pub fn open_text(&self, sealed: &SealedSecret) -> Result<String, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&sealed.0)
            .map_err(|_| Error::Open)?;
        String::from_utf8(self.open(&bytes)?).map_err(|_| Error::Open)
    }

    /// Decrypts what [`Sealer::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), body)
            .map_err(|_| Error::Open)
    }
}

/// The runner opens vault secrets with the server's key, and seals the OAuth tokens the egress
/// proxy refreshes.
impl managed_agents_harness::runner::SecretOpener for Sealer {
    fn open(&self, sealed: &SealedSecret) -> Option<String> {
        self.open_text(sealed).ok()
    }

    fn seal(&self, plaintext: &str) -> Option<SealedSecret> {
        self.seal(plaintext.as_bytes())
            .ok()
            .map(|sealed| SealedSecret(base64::engine::general_purpose::STANDARD.encode(sealed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_rejects_a_wrong_key() {
        let a = Sealer::ephemeral().expect("random");
        let b = Sealer::ephemeral().expect("random");
        let sealed = a.seal(b"token").expect("seal");
        assert!(!sealed.windows(5).any(|w| w == b"token"));
        assert_eq!(a.open(&sealed).expect("open"), b"token");
        assert!(b.open(&sealed).is_err());
    }

    #[test]
    fn key_file_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Sealer::load_or_generate(dir.path()).expect("generate");
        let again = Sealer::load_or_generate(dir.path()).expect("load");
        let sealed = first.seal(b"x").expect("seal");
        assert_eq!(again.open(&sealed).expect("open"), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Sealer::from_text("short").is_err());
        assert!(Sealer::from_text(&"ab".repeat(32)).is_ok());
    }
}
