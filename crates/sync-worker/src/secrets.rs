//! Target secrets sealed at rest.
//!
//! A target's webhook secret or outbound SCIM token is shown once and then
//! kept only sealed: ChaCha20-Poly1305 under a 32-byte key that lives
//! outside the database (configuration, or a key file in the data
//! directory), so a copy of the database alone does not reveal them.
//!
//! Sealed text form: `v1.<base64 of nonce (12 bytes) || ciphertext+tag>`.
//! The version prefix lets a later format (or key id) be added without
//! guessing; the nonce is fresh and random for every seal, which is safe for
//! the few thousand seals a key sees (random 96-bit nonces stay far from a
//! collision below 2^32 messages).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The file in the data directory that keeps a generated sealing key.
pub const KEY_FILE: &str = "target-secrets.key";
/// The length of a sealing key in bytes.
pub const KEY_LEN: usize = 32;

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;
// Bound into every seal, so a ciphertext made by another use of the same
// key (should one ever exist) does not open as a target secret.
const ASSOCIATED_DATA: &[u8] = b"scimgate target secret v1";

/// Why a key could not be loaded or a sealed secret not opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error("the target secret key must be base64 of {KEY_LEN} bytes ({0})")]
    BadKey(String),
    /// The key file could not be read, created or written.
    #[error("target secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but does not hold a usable key.
    #[error(
        "target secret key file {path} is not valid ({reason}); restore it from a backup: \
         without it the stored target secrets cannot be read"
    )]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The sealed text is not in the `v1.<base64>` form.
    #[error("sealed secret is malformed ({0})")]
    Malformed(&'static str),
    /// Authentication failed: another key sealed it, or it was altered.
    #[error("sealed secret does not open with this key (another key, or altered)")]
    Unauthentic,
    /// Sealing failed (only for an absurdly large plaintext).
    #[error("secret could not be sealed")]
    Seal,
}

/// Seals and opens target secrets with one key.
///
/// Debug output never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    /// A box for this 32-byte key.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// A box for a key given as base64 of 32 bytes (from configuration).
    pub fn from_key_text(text: &str) -> Result<Self, SecretError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey("not standard base64".into()))?;
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey(format!("{} bytes", bytes.len())))?;
        Ok(Self::new(&key))
    }

    /// A new random key as base64 text (what [`SecretBox::from_key_text`]
    /// reads), for an operator who sets the key in configuration.
    pub fn generate_key_text() -> String {
        BASE64.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// The box for `<dir>/target-secrets.key`, creating the directory
    /// (mode 0700) and a random key file (mode 0600) if there is none; the
    /// flag says whether the key was created now.
    ///
    /// Two processes starting together agree on one key: the new key is
    /// written to a private temporary file and linked into place only if
    /// no key file exists yet, otherwise the winner's key is read.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), SecretError> {
        let path = dir.join(KEY_FILE);
        if let Some(found) = read_key_file(&path)? {
            return Ok((found, false));
        }
        create_private_dir(dir).map_err(|source| SecretError::KeyFile {
            path: dir.to_owned(),
            source,
        })?;
        let text = Self::generate_key_text();
        match write_new_key_file(&path, &text) {
            Ok(()) => Ok((Self::from_key_text(&text)?, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process created it between our read and our link.
                let found = read_key_file(&path)?;
                found
                    .map(|b| (b, false))
                    .ok_or(SecretError::KeyFile { path, source: e })
            }
            Err(source) => Err(SecretError::KeyFile { path, source }),
        }
    }

    /// Seals `plaintext` under a fresh random nonce: `v1.<base64>`.
    pub fn seal(&self, plaintext: &str) -> Result<String, SecretError> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: ASSOCIATED_DATA,
                },
            )
            .map_err(|_| SecretError::Seal)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", BASE64.encode(bytes)))
    }

    /// Opens what [`SecretBox::seal`] made with the same key.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let encoded = sealed
            .strip_prefix(PREFIX)
            .ok_or(SecretError::Malformed("no v1. prefix"))?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        // 16 bytes of Poly1305 tag follow the nonce even for an empty secret.
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: ASSOCIATED_DATA,
                },
            )
            .map_err(|_| SecretError::Unauthentic)?;
        // Only this code seals, always from a &str: anything else was not ours.
        String::from_utf8(plain).map_err(|_| SecretError::Malformed("not UTF-8"))
    }
}

fn read_key_file(path: &Path) -> Result<Option<SecretBox>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            SecretBox::from_key_text(&text)
                .map(Some)
                .map_err(|e| SecretError::BadKeyFile {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::KeyFile {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the target secret key file is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Creates the directory (and parents) readable by this user only; an
/// existing directory's permissions are the operator's and stay as they are.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes the key to a private temporary file, then hard-links it to
/// `path`, which fails with `AlreadyExists` rather than replacing a key
/// another process wrote: a replaced key would orphan its secrets.
fn write_new_key_file(path: &Path, text: &str) -> std::io::Result<()> {
    let temp = path.with_extension(format!("key.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        std::fs::hard_link(&temp, path)
    })();
    let _ = std::fs::remove_file(&temp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_box() -> SecretBox {
        SecretBox::from_key_text(&SecretBox::generate_key_text()).expect("generated key")
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let b = a_box();
        for plain in [
            "",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "ünïcödé token",
        ] {
            let one = b.seal(plain).expect("seal");
            let two = b.seal(plain).expect("seal");
            assert!(one.starts_with("v1."));
            assert_ne!(one, two, "a fresh nonce every time");
            assert!(!one.contains(plain) || plain.is_empty());
            assert_eq!(b.open(&one).expect("open"), plain);
            assert_eq!(b.open(&two).expect("open"), plain);
        }
    }

    #[test]
    fn tampered_malformed_or_foreign_text_is_an_error() {
        let b = a_box();
        let sealed = b.seal("token-123").expect("seal");
        assert!(matches!(
            a_box().open(&sealed),
            Err(SecretError::Unauthentic)
        ));
        // Flip one bit in every byte position in turn: none may open.
        let raw = BASE64.decode(&sealed[3..]).expect("base64");
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let text = format!("v1.{}", BASE64.encode(&bad));
            assert!(
                matches!(b.open(&text), Err(SecretError::Unauthentic)),
                "byte {i}"
            );
        }
        let truncated = format!("v1.{}", BASE64.encode(&raw[..raw.len() - 1]));
        assert!(matches!(b.open(&truncated), Err(SecretError::Unauthentic)));
        for bad in ["", "v1.", "v1.!!!", "v2.AAAA", "token-123", "v1.AAAA"] {
            assert!(
                matches!(b.open(bad), Err(SecretError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_text_is_checked_and_never_printed() {
        assert!(matches!(
            SecretBox::from_key_text("not base64!"),
            Err(SecretError::BadKey(_))
        ));
        assert!(matches!(
            SecretBox::from_key_text(&BASE64.encode([7u8; 31])),
            Err(SecretError::BadKey(_))
        ));
        let text = BASE64.encode([7u8; 32]);
        let b = SecretBox::from_key_text(&format!(" {text}\n")).expect("trimmed");
        let debug = format!("{b:?}");
        assert!(
            !debug.contains(&text) && debug.contains("redacted"),
            "{debug}"
        );
        // The same key text opens what another box with it sealed.
        let sealed = b.seal("x").expect("seal");
        let again = SecretBox::new(&[7u8; 32]);
        assert_eq!(again.open(&sealed).expect("open"), "x");
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        let (first, created) = SecretBox::load_or_create(&dir).expect("created");
        assert!(created);
        let path = dir.join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)]);

        let sealed = first.seal("kept").expect("seal");
        let (second, created) = SecretBox::load_or_create(&dir).expect("read back");
        assert!(!created);
        assert_eq!(second.open(&sealed).expect("same key"), "kept");

        std::fs::write(&path, "garbage").expect("write");
        let e = SecretBox::load_or_create(&dir).expect_err("corrupt key file");
        assert!(matches!(e, SecretError::BadKeyFile { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("kept"),
            "garbage",
            "a bad key file is never overwritten"
        );
    }

    #[test]
    fn a_link_race_keeps_the_first_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE);
        write_new_key_file(&path, "first").expect("first");
        let e = write_new_key_file(&path, "second").expect_err("second");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first\n");
    }
}
