//! The key vault (issue 15): venue API keys, encrypted at rest, referenced by
//! name from config and never written anywhere else.
//!
//! A follower's key can move that follower's money, so the vault keeps three
//! promises:
//! - **At rest** the whole vault is one ChaCha20-Poly1305 ciphertext (RustCrypto's
//!   `chacha20poly1305`), under a 32-byte master key that comes from a file or the
//!   environment (`MasterKey`), never from the command line, where `ps` and shell
//!   histories would show it. A wrong master key and a damaged file are the same
//!   error: the tag does not verify, and nothing is read.
//! - **In memory** the API key and the secret are `secrecy::SecretString`s: their
//!   `Debug` prints `[REDACTED]` and they are zeroed when dropped. The plaintext of
//!   the vault is built and parsed in `Zeroizing` buffers, with a length-prefixed
//!   layout of its own (no serde), so no copy of a secret is left behind in a
//!   parser's intermediate strings.
//! - **In errors** no message holds key material: they name the vault's path, the
//!   entry's name and what was wrong.
//!
//! A key whose account may withdraw, or that cannot trade futures, is refused
//! (`admit`): at `fillcast keys add` and again at every engine start.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The first bytes of a vault file; its last byte is the layout's version. Also
/// the AEAD's associated data, so a file of another version cannot be read as
/// this one.
pub const MAGIC: &[u8; 8] = b"FCVAULT\x01";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// A vault of more than this is not one this program wrote.
const FILE_MAX: u64 = 16 << 20;
/// The longest API key or secret held. Binance's are 64 characters and an
/// Ed25519 PKCS#8 PEM about 120; the layout's own limit is 64 KiB.
pub const KEY_TEXT_MAX: usize = 4096;
/// A master key file longer than this is not one.
const MASTER_FILE_MAX: u64 = 1024;

/// The environment variable holding a path to the master key file.
pub const ENV_KEY_FILE: &str = "FILLCAST_VAULT_KEY_FILE";
/// The environment variable holding the master key itself, as 64 hex digits.
pub const ENV_KEY: &str = "FILLCAST_VAULT_KEY";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    // Not `source`: the message already holds it, and `{:#}` would say it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: cannot be opened with this master key: the key is not the one it was written with, or the file is damaged")]
    WrongKeyOrDamaged { path: PathBuf },
    #[error("{path}: not a fillcast key vault: {reason}")]
    BadFormat { path: PathBuf, reason: String },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("key name `{0}`: expected 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` and `.`")]
    BadName(String),
    #[error("a key named `{0}` is already in the vault (remove it first)")]
    Duplicate(String),
    #[error("no key named `{0}` in the vault")]
    NotFound(String),
    #[error("key `{name}`: {what} is empty")]
    Empty { name: String, what: &'static str },
    #[error("key `{name}`: {what} is {len} bytes, more than the {KEY_TEXT_MAX} a venue key has")]
    TooLong {
        name: String,
        what: &'static str,
        len: usize,
    },
    #[error("{path}: changed since it was read (another `fillcast keys` at the same time?); nothing was written, run the command again")]
    Changed { path: PathBuf },
}

/// The 32 bytes every vault of an installation is encrypted under. Zeroed on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    /// A new random master key (the operating system's generator).
    pub fn generate() -> MasterKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        MasterKey(k)
    }

    /// From 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &[u8]) -> Result<MasterKey, String> {
        let mut k = Zeroizing::new([0u8; 32]);
        let trimmed = text.trim_ascii();
        if trimmed.len() != 64 {
            return Err(format!(
                "expected 64 hex digits, found {} characters",
                trimmed.len()
            ));
        }
        for (i, pair) in trimmed.chunks_exact(2).enumerate() {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => k[i] = h << 4 | l,
                _ => return Err("64 characters, but not all hex digits".into()),
            }
        }
        Ok(MasterKey(k))
    }

    /// From a key file's bytes: 64 hex digits, or exactly 32 raw bytes
    /// (`head -c 32 /dev/urandom`). 32 bytes of text are refused: a passphrase
    /// or a 128-bit key in hex, not 256 random bits.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, String> {
        if bytes.len() == 32
            && !bytes
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(bytes);
            return Ok(MasterKey(k));
        }
        MasterKey::from_hex(bytes).map_err(|e| format!("{e} (or 32 raw random bytes)"))
    }

    /// Read from `path`, which only its owner may read (a key others can read is
    /// refused: it would protect nothing).
    pub fn from_file(path: &Path) -> Result<MasterKey, VaultError> {
        use std::os::unix::fs::MetadataExt;
        let io = |err| VaultError::Io {
            path: path.to_path_buf(),
            err,
        };
        // A FIFO or a device is refused before it is opened (opening a FIFO
        // blocks); the rest is checked through the handle, so that what is
        // checked is what is read.
        let not_file = || VaultError::MasterKey(format!("{}: not a regular file", path.display()));
        if !std::fs::metadata(path).map_err(io)?.is_file() {
            return Err(not_file());
        }
        let f = std::fs::File::open(path).map_err(io)?;
        let meta = f.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(not_file());
        }
        if meta.mode() & 0o077 != 0 {
            return Err(VaultError::MasterKey(format!(
                "{}: readable by others (mode {:o}); `chmod 600` it",
                path.display(),
                meta.mode() & 0o777
            )));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(MASTER_FILE_MAX as usize + 1));
        f.take(MASTER_FILE_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MASTER_FILE_MAX {
            return Err(VaultError::MasterKey(format!(
                "{}: more than {MASTER_FILE_MAX} bytes, not a master key",
                path.display()
            )));
        }
        MasterKey::from_bytes(&bytes)
            .map_err(|m| VaultError::MasterKey(format!("{}: {m}", path.display())))
    }

    /// From the environment: `FILLCAST_VAULT_KEY_FILE` (a path) or
    /// `FILLCAST_VAULT_KEY` (64 hex digits). Both set is refused: which one
    /// wins would decide, silently, which key a new vault is written under.
    pub fn from_env() -> Result<MasterKey, VaultError> {
        match (std::env::var_os(ENV_KEY_FILE), std::env::var_os(ENV_KEY)) {
            (Some(_), Some(_)) => Err(VaultError::MasterKey(format!(
                "both {ENV_KEY_FILE} and {ENV_KEY} are set; unset one"
            ))),
            (Some(path), None) if path.is_empty() => Err(VaultError::MasterKey(format!(
                "{ENV_KEY_FILE} is set but empty"
            ))),
            (Some(path), None) => MasterKey::from_file(Path::new(&path)),
            (None, Some(text)) => {
                let text = Zeroizing::new(text.into_encoded_bytes());
                MasterKey::from_hex(&text)
                    .map_err(|e| VaultError::MasterKey(format!("{ENV_KEY}: {e}")))
            }
            (None, None) => Err(VaultError::MasterKey(format!(
            "none given: set {ENV_KEY_FILE} to a file holding it (or {ENV_KEY} to its 64 hex digits)"
            ))),
        }
    }

    /// Writes this key as 64 hex digits to a new file at `path`, mode 0600;
    /// refuses to overwrite one.
    pub fn write_new(&self, path: &Path) -> Result<(), VaultError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |err| VaultError::Io {
            path: path.to_path_buf(),
            err,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let mut text = Zeroizing::new([0u8; 65]);
        for (i, b) in self.0.iter().enumerate() {
            text[2 * i] = HEX[(b >> 4) as usize];
            text[2 * i + 1] = HEX[(b & 15) as usize];
        }
        text[64] = b'\n';
        f.write_all(text.as_ref()).map_err(io)?;
        f.sync_all().map_err(io)?;
        // Its name too: a vault whose master key a crash lost opens for no one.
        sync_parent(path)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// How the venue checks the key's signatures.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// HMAC-SHA256 with a shared secret.
    Hmac,
    /// Ed25519: the secret is the private key (PKCS#8 PEM).
    Ed25519,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Hmac => "hmac",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "hmac" => Some(KeyKind::Hmac),
            "ed25519" => Some(KeyKind::Ed25519),
            _ => None,
        }
    }
}

/// What the venue said the key may do, and when it said so.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub futures: bool,
    pub withdrawals: bool,
    /// Milliseconds since the epoch.
    pub checked_at_ms: i64,
}

/// Why a key may not be used.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its account can withdraw (enableWithdrawals): a copy-trading key must not be able to move funds out; make a key without withdrawal permission")]
    CanWithdraw,
    #[error(
        "it cannot trade futures (enableFutures is false): enable futures trading for the key"
    )]
    NoFutures,
}

/// Whether a key with these permissions may be held and used.
pub fn admit(p: &Permissions) -> Result<(), Refusal> {
    if p.withdrawals {
        return Err(Refusal::CanWithdraw);
    }
    if !p.futures {
        return Err(Refusal::NoFutures);
    }
    Ok(())
}

/// One key. `Debug` shows the name, venue and kind; the key and secret print as
/// `[REDACTED]`.
#[derive(Debug)]
pub struct VaultEntry {
    pub name: String,
    /// The venue kind the key is for (`binance`).
    pub venue: String,
    pub kind: KeyKind,
    pub api_key: SecretString,
    pub secret: SecretString,
    /// As last checked with the venue; `None` before any check.
    pub permissions: Option<Permissions>,
}

/// A vault file's keys, in the order they were added.
#[derive(Debug)]
pub struct Vault {
    path: PathBuf,
    entries: Vec<VaultEntry>,
    /// The SHA-256 of the file as read (`None`: there was none), so that `save`
    /// refuses to overwrite a vault another process changed meanwhile.
    seen: Option<[u8; 32]>,
}

/// Whether `name` is a key name: what config refers to, safe to print.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `valid_name` as an error that shows the name as it may be printed.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(VaultError::BadName(printable(name)))
    }
}

impl VaultEntry {
    /// What every entry is, whether `add` is given it or a file holds it: a key
    /// name, and an API key and a secret neither blank nor longer than any
    /// venue's (which also keeps each within the layout's 16-bit lengths).
    pub fn check(&self) -> Result<(), VaultError> {
        check_name(&self.name)?;
        for (what, s) in [("the API key", &self.api_key), ("the secret", &self.secret)] {
            let s = s.expose_secret();
            if s.trim().is_empty() {
                return Err(VaultError::Empty {
                    name: self.name.clone(),
                    what,
                });
            }
            if s.len() > KEY_TEXT_MAX {
                return Err(VaultError::TooLong {
                    name: self.name.clone(),
                    what,
                    len: s.len(),
                });
            }
        }
        Ok(())
    }
}

impl Vault {
    /// The vault at `path`: empty if there is no file yet.
    pub fn open(path: &Path, key: &MasterKey) -> Result<Vault, VaultError> {
        let Some(bytes) = read_file(path)? else {
            return Ok(Vault {
                path: path.to_path_buf(),
                entries: Vec::new(),
                seen: None,
            });
        };
        let entries = decrypt(&bytes, key)
            .ok_or_else(|| match bad_header(&bytes) {
                Some(reason) => VaultError::BadFormat {
                    path: path.to_path_buf(),
                    reason,
                },
                None => VaultError::WrongKeyOrDamaged {
                    path: path.to_path_buf(),
                },
            })
            .and_then(|plain| {
                decode(&plain).map_err(|reason| VaultError::BadFormat {
                    path: path.to_path_buf(),
                    reason,
                })
            })?;
        Ok(Vault {
            path: path.to_path_buf(),
            entries,
            seen: Some(Sha256::digest(&bytes).into()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[VaultEntry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&VaultEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Adds `entry`; refuses a bad or taken name and an empty key or secret.
    pub fn add(&mut self, entry: VaultEntry) -> Result<(), VaultError> {
        entry.check()?;
        if self.get(&entry.name).is_some() {
            return Err(VaultError::Duplicate(entry.name));
        }
        self.entries.push(entry);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<VaultEntry, VaultError> {
        let i = self
            .entries
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| VaultError::NotFound(printable(name)))?;
        Ok(self.entries.remove(i))
    }

    /// Records what the venue said `name` may do.
    pub fn set_permissions(&mut self, name: &str, p: Permissions) -> Result<(), VaultError> {
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.name == name)
            .ok_or_else(|| VaultError::NotFound(printable(name)))?;
        e.permissions = Some(p);
        Ok(())
    }

    /// Writes the vault: a new file beside it (mode 0600), synced, then renamed
    /// over the old one, so a crash leaves the old vault or the new one, whole.
    /// Under a lock beside it, and only if the file is still the one `open`
    /// read: two commands at once would otherwise each drop the other's change.
    /// A symlinked vault is written where the link points; the link stays.
    pub fn save(&mut self, key: &MasterKey) -> Result<(), VaultError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |err| VaultError::Io { path, err }
        };
        let target = match std::fs::canonicalize(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.path.clone(),
            Err(e) => return Err(io(&self.path)(e)),
        };
        let lock_path = beside(&target, ".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let now = read_file(&target)?.map(|b| Sha256::digest(&b).into());
        if now != self.seen {
            return Err(VaultError::Changed {
                path: self.path.clone(),
            });
        }
        let plain = encode(&self.entries);
        let sealed = encrypt(&plain, key);
        // The vault's whole name and a suffix: never the vault itself, nor
        // another vault's temporary file (`keys` and `keys.vault` would share
        // `keys.vault-new` if the suffix replaced the extension).
        let tmp = beside(&target, ".new");
        debug_assert_ne!(tmp, target);
        // A stale one is a crashed save's; only a save, under the lock, writes it.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&sealed).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        sync_parent(&target)?;
        self.seen = Some(Sha256::digest(&sealed).into());
        Ok(())
    }
}

/// `path` with `suffix` after its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes a new or renamed file's name durable (the current directory's for a
/// bare file name).
fn sync_parent(path: &Path) -> Result<(), VaultError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|err| VaultError::Io {
            path: dir.to_path_buf(),
            err,
        })
}

/// The vault file at `path`, or `None` if there is none. What is not a regular
/// file is refused before it is opened (opening a FIFO would block), and what
/// is larger than any vault before it is read.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, VaultError> {
    let io = |err| VaultError::Io {
        path: path.to_path_buf(),
        err,
    };
    let bad = |reason: String| VaultError::BadFormat {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
        Ok(m) if !m.is_file() => return Err(bad("not a regular file".into())),
        Ok(_) => {}
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > FILE_MAX {
        return Err(bad(format!(
            "more than {FILE_MAX} bytes, more than any vault"
        )));
    }
    Ok(Some(bytes))
}

/// `name` as it may be printed in an error: a name is not secret, but a
/// mistyped argument could be anything (a key pasted in the wrong place), so
/// one longer than any name is not shown, and the rest is escaped.
fn printable(name: &str) -> String {
    let chars = name.chars().count();
    if chars > 64 {
        return format!("<{chars} characters, not shown>");
    }
    name.chars().flat_map(char::escape_debug).collect()
}

fn cipher(key: &MasterKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key.0.as_ref()))
}

fn encrypt(plain: &[u8], key: &MasterKey) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: MAGIC,
            },
        )
        // Only a message longer than the cipher's 256 GiB limit fails.
        .expect("a vault is far below ChaCha20-Poly1305's message limit");
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn decrypt(file: &[u8], key: &MasterKey) -> Option<Zeroizing<Vec<u8>>> {
    if bad_header(file).is_some() {
        return None;
    }
    let (nonce, sealed) = file[MAGIC.len()..].split_at(NONCE_BYTES);
    cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: MAGIC,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// What is wrong with the file's header, if anything (before any decryption).
fn bad_header(file: &[u8]) -> Option<String> {
    if file.len() < MAGIC.len() || file[..MAGIC.len() - 1] != MAGIC[..MAGIC.len() - 1] {
        return Some("it does not start with FCVAULT".into());
    }
    if file[MAGIC.len() - 1] != MAGIC[MAGIC.len() - 1] {
        return Some(format!(
            "layout version {}; this build reads version {}",
            file[MAGIC.len() - 1],
            MAGIC[MAGIC.len() - 1]
        ));
    }
    if file.len() < MAGIC.len() + NONCE_BYTES + TAG_BYTES {
        return Some(format!("{} bytes, cut short", file.len()));
    }
    None
}

// The plaintext: a u32 count, then per entry its name, venue, kind byte, API key,
// secret (each string a u16 length and its bytes) and permissions (a presence
// byte, then futures and withdrawals bytes and an i64 time), little-endian.

fn put_str(out: &mut Vec<u8>, s: &str) {
    // `VaultEntry::check` bounds every string far below 64 KiB; a cut one would
    // be another key, or not UTF-8 and the whole vault unreadable.
    let len = u16::try_from(s.len()).expect("vault strings are checked to fit a u16");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(entries: &[VaultEntry]) -> Zeroizing<Vec<u8>> {
    let size: usize = entries
        .iter()
        .map(|e| {
            32 + e.name.len()
                + e.venue.len()
                + e.api_key.expose_secret().len()
                + e.secret.expose_secret().len()
        })
        .sum();
    // Sized once: a growing Vec would leave copies of secrets in freed memory.
    let mut out = Zeroizing::new(Vec::with_capacity(4 + size));
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        put_str(&mut out, &e.name);
        put_str(&mut out, &e.venue);
        out.push(match e.kind {
            KeyKind::Hmac => 0,
            KeyKind::Ed25519 => 1,
        });
        put_str(&mut out, e.api_key.expose_secret());
        put_str(&mut out, e.secret.expose_secret());
        match e.permissions {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.push(p.futures as u8);
                out.push(p.withdrawals as u8);
                out.extend_from_slice(&p.checked_at_ms.to_le_bytes());
            }
        }
    }
    debug_assert!(out.len() <= out.capacity());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| format!("cut short at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn str(&mut self, what: &str) -> Result<&'a str, String> {
        let len = u16::from_le_bytes([self.byte()?, self.byte()?]) as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn flag(&mut self, what: &str) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{what}: {b} is not 0 or 1")),
        }
    }
}

fn decode(plain: &[u8]) -> Result<Vec<VaultEntry>, String> {
    let mut r = Reader {
        bytes: plain,
        at: 0,
    };
    let count = u32::from_le_bytes(r.take(4)?.try_into().unwrap_or_default());
    let mut entries = Vec::new();
    let mut names = std::collections::HashSet::new();
    for i in 0..count {
        let name = r.str("a name")?.to_string();
        if !valid_name(&name) {
            return Err(format!("entry {i}: its name is not a key name"));
        }
        // `get` would find the first and `remove` take only it: a removed key
        // would still be there.
        if !names.insert(name.clone()) {
            return Err(format!("entry {i}: a second key named `{name}`"));
        }
        let venue = r.str("a venue")?.to_string();
        if !valid_name(&venue) {
            return Err(format!("key `{name}`: its venue is not a venue name"));
        }
        let kind = match r.byte()? {
            0 => KeyKind::Hmac,
            1 => KeyKind::Ed25519,
            k => return Err(format!("key `{name}`: kind {k} is unknown")),
        };
        let api_key = SecretString::from(r.str("an API key")?.to_string());
        let secret = SecretString::from(r.str("a secret")?.to_string());
        let permissions = if r.flag("permissions")? {
            let futures = r.flag("futures")?;
            let withdrawals = r.flag("withdrawals")?;
            let at = i64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default());
            Some(Permissions {
                futures,
                withdrawals,
                checked_at_ms: at,
            })
        } else {
            None
        };
        let entry = VaultEntry {
            name,
            venue,
            kind,
            api_key,
            secret,
            permissions,
        };
        entry.check().map_err(|e| e.to_string())?;
        entries.push(entry);
    }
    if r.at != plain.len() {
        return Err(format!("{} bytes after the last key", plain.len() - r.at));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn entry(name: &str) -> VaultEntry {
        VaultEntry {
            name: name.into(),
            venue: "binance".into(),
            kind: KeyKind::Hmac,
            api_key: SecretString::from(API.to_string()),
            secret: SecretString::from(SECRET.to_string()),
            permissions: Some(Permissions {
                futures: true,
                withdrawals: false,
                checked_at_ms: 1_700_000_000_000,
            }),
        }
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn a_saved_vault_opens_again_with_its_key_and_holds_no_secret_in_clear() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("keys.vault");
        let key = MasterKey::generate();
        let mut v = Vault::open(&path, &key).unwrap();
        assert!(v.entries().is_empty());
        v.add(entry("alice")).unwrap();
        let mut bob = entry("bob");
        bob.kind = KeyKind::Ed25519;
        bob.permissions = None;
        v.add(bob).unwrap();
        v.save(&key).unwrap();

        let bytes = std::fs::read(&path).unwrap();
        assert!(!contains(&bytes, API) && !contains(&bytes, SECRET));
        assert!(!contains(&bytes, "alice"), "names are encrypted too");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);

        let v = Vault::open(&path, &key).unwrap();
        assert_eq!(v.entries().len(), 2);
        let a = v.get("alice").unwrap();
        assert_eq!(a.api_key.expose_secret(), API);
        assert_eq!(a.secret.expose_secret(), SECRET);
        assert_eq!(a.permissions, entry("x").permissions);
        let b = v.get("bob").unwrap();
        assert_eq!((b.kind, b.permissions), (KeyKind::Ed25519, None));
    }

    #[test]
    fn another_master_key_or_any_flipped_byte_opens_nothing() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("keys.vault");
        let key = MasterKey::generate();
        let mut v = Vault::open(&path, &key).unwrap();
        v.add(entry("alice")).unwrap();
        v.save(&key).unwrap();
        let other = MasterKey::generate();
        assert!(matches!(
            Vault::open(&path, &other),
            Err(VaultError::WrongKeyOrDamaged { .. })
        ));
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let e = Vault::open(&path, &key).expect_err("a flipped byte must not open");
            assert!(
                matches!(
                    e,
                    VaultError::WrongKeyOrDamaged { .. } | VaultError::BadFormat { .. }
                ),
                "byte {i}: {e}"
            );
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(Vault::open(&path, &key).is_err(), "cut to {len}");
        }
    }

    #[test]
    fn debug_and_errors_show_no_key_material() {
        let mut v = Vault {
            path: "k.vault".into(),
            entries: Vec::new(),
            seen: None,
        };
        v.add(entry("alice")).unwrap();
        let shown = format!("{v:?} {:?}", MasterKey::generate());
        assert!(!shown.contains(API) && !shown.contains(SECRET), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("REDACTED"),
            "{shown}"
        );
        let e = v.add(entry("alice")).unwrap_err().to_string();
        assert!(!e.contains(API) && !e.contains(SECRET), "{e}");
        let mut bad = entry("carol");
        bad.secret = SecretString::from(" ".to_string());
        assert!(matches!(v.add(bad), Err(VaultError::Empty { .. })));
        assert!(matches!(
            v.add(entry("no spaces allowed")),
            Err(VaultError::BadName(_))
        ));
    }

    #[test]
    fn keys_that_can_withdraw_or_cannot_trade_futures_are_refused() {
        let p = |futures, withdrawals| Permissions {
            futures,
            withdrawals,
            checked_at_ms: 0,
        };
        assert_eq!(admit(&p(true, false)), Ok(()));
        assert_eq!(admit(&p(true, true)), Err(Refusal::CanWithdraw));
        assert_eq!(admit(&p(false, true)), Err(Refusal::CanWithdraw));
        assert_eq!(admit(&p(false, false)), Err(Refusal::NoFutures));
    }

    #[test]
    fn master_keys_come_as_hex_or_raw_bytes_from_private_files_only() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        assert!(MasterKey::from_bytes(hex.as_bytes()).is_ok());
        assert!(MasterKey::from_bytes(&[7u8; 32]).is_ok());
        assert!(MasterKey::from_bytes(b"short").is_err());
        assert!(MasterKey::from_bytes(&[b'g'; 64]).is_err());
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new(&path).unwrap();
        assert!(key.write_new(&path).is_err(), "never overwrites a key");
        let again = MasterKey::from_file(&path).unwrap();
        assert_eq!(*again.0, *key.0);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn hostile_plaintexts_are_errors_not_panics() {
        let good = encode(&[entry("alice")]);
        assert_eq!(decode(&good).unwrap().len(), 1);
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "cut to {len}");
        }
        let mut huge = good.to_vec();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        proptest::proptest!(|(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256))| {
            let _ = decode(&bytes);
        });
    }

    /// The plaintext `entries` would have, sealed into a file at `path`: what
    /// only a holder of the master key could write.
    fn craft(path: &Path, key: &MasterKey, entries: &[VaultEntry]) {
        std::fs::write(path, encrypt(&encode(entries), key)).unwrap();
    }

    #[test]
    fn regression_a_secret_over_64_kib_was_cut_on_save_and_made_the_vault_unreadable() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("keys.vault");
        let key = MasterKey::generate();
        let mut v = Vault::open(&path, &key).unwrap();
        v.add(entry("alice")).unwrap();
        let mut big = entry("big");
        big.secret = SecretString::from("é".repeat(50_000));
        assert!(matches!(v.add(big), Err(VaultError::TooLong { .. })));
        let mut big = entry("big");
        big.api_key = SecretString::from("k".repeat(KEY_TEXT_MAX + 1));
        let e = v.add(big).unwrap_err().to_string();
        assert!(e.contains("more than the 4096"), "{e}");
        v.save(&key).unwrap();
        assert_eq!(Vault::open(&path, &key).unwrap().entries().len(), 1);
    }

    #[test]
    fn regression_a_vault_with_two_keys_of_one_name_opened_and_remove_left_one() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("keys.vault");
        let key = MasterKey::generate();
        craft(&path, &key, &[entry("alice"), entry("bob"), entry("alice")]);
        let e = Vault::open(&path, &key).unwrap_err().to_string();
        assert!(e.contains("entry 2: a second key named `alice`"), "{e}");
        let mut odd = entry("carol");
        odd.venue = "bin ance\u{1b}[2J".into();
        craft(&path, &key, &[odd]);
        let e = Vault::open(&path, &key).unwrap_err().to_string();
        assert!(e.contains("not a venue name"), "{e}");
        let mut blank = entry("dave");
        blank.secret = SecretString::from(String::new());
        craft(&path, &key, &[blank]);
        let e = Vault::open(&path, &key).unwrap_err().to_string();
        assert!(e.contains("the secret is empty"), "{e}");
    }

    #[test]
    fn regression_a_master_key_file_or_vault_that_is_a_fifo_hung_the_command() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let key = MasterKey::from_file(&f)
                .map(drop)
                .map_err(|e| e.to_string());
            let vault = Vault::open(&f, &MasterKey::generate())
                .map(drop)
                .map_err(|e| e.to_string());
            let _ = tx.send((key, vault));
        });
        let (key, vault) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a FIFO must be refused, not read");
        assert!(key.unwrap_err().contains("not a regular file"));
        assert!(vault.unwrap_err().contains("not a regular file"));
        let e = MasterKey::from_file(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn regression_a_32_character_passphrase_was_taken_as_a_raw_master_key() {
        for text in [
            &b"correct horse battery staple 123"[..],
            b"correct horse battery staple 1\r\n",
            b"00112233445566778899aabbccddeeff",
        ] {
            assert_eq!(text.len(), 32);
            let e = MasterKey::from_bytes(text).unwrap_err();
            assert!(e.contains("expected 64 hex digits"), "{e}");
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        raw[0] = 0;
        assert!(MasterKey::from_bytes(&raw).is_ok());
        assert!(
            MasterKey::from_hex(&raw).is_err(),
            "the environment takes hex only"
        );
    }

    #[test]
    fn regression_two_commands_saving_one_vault_dropped_a_key() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("keys.vault");
        let key = MasterKey::generate();
        let mut first = Vault::open(&path, &key).unwrap();
        let mut second = Vault::open(&path, &key).unwrap();
        first.add(entry("alice")).unwrap();
        first.save(&key).unwrap();
        second.add(entry("bob")).unwrap();
        let e = second.save(&key).unwrap_err();
        assert!(matches!(e, VaultError::Changed { .. }), "{e}");
        let v = Vault::open(&path, &key).unwrap();
        assert!(v.get("alice").is_some() && v.get("bob").is_none());
        first.add(entry("carol")).unwrap();
        first
            .save(&key)
            .expect("a vault saves again over what it wrote");
        assert_eq!(Vault::open(&path, &key).unwrap().entries().len(), 2);
    }

    #[test]
    fn regression_a_symlinked_vault_was_replaced_by_a_file_and_its_target_left_stale() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.vault");
        let link = d.path().join("link.vault");
        let key = MasterKey::generate();
        let mut v = Vault::open(&real, &key).unwrap();
        v.add(entry("alice")).unwrap();
        v.save(&key).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut v = Vault::open(&link, &key).unwrap();
        v.add(entry("bob")).unwrap();
        v.save(&key).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(Vault::open(&real, &key).unwrap().entries().len(), 2);
    }

    #[test]
    fn regression_saving_a_vault_deleted_another_file_or_the_vault_itself_first() {
        let d = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        // `keys`' temporary file was `keys.vault-new`, another vault's own.
        let other = d.path().join("keys.vault-new");
        std::fs::write(&other, b"another vault's").unwrap();
        let mut v = Vault::open(&d.path().join("keys"), &key).unwrap();
        v.add(entry("alice")).unwrap();
        v.save(&key).unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"another vault's");
        // A vault named like the temporary file was deleted before its rewrite.
        for path in [other, d.path().join("keys")] {
            assert_ne!(beside(&path, ".new"), path);
        }
        // A stale temporary file of a crashed save is no obstacle.
        std::fs::write(d.path().join("keys.new"), b"torn").unwrap();
        v.add(entry("bob")).unwrap();
        v.save(&key).unwrap();
        assert_eq!(
            Vault::open(&d.path().join("keys"), &key)
                .unwrap()
                .entries()
                .len(),
            2
        );
    }

    #[test]
    fn regression_io_errors_said_their_cause_twice() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = Vault::open(&file.join("keys.vault"), &MasterKey::generate()).unwrap_err();
        assert!(matches!(e, VaultError::Io { .. }), "{e}");
        // `{:#}` at the binary's edge appends every source to the message.
        assert!(std::error::Error::source(&e).is_none(), "{e}");
        assert!(e.to_string().contains("Not a directory"), "{e}");
    }

    #[test]
    fn regression_a_bad_name_error_echoed_64_characters_of_what_was_typed() {
        let pasted = format!("{SECRET}+");
        let e = check_name(&pasted).unwrap_err().to_string();
        assert!(!e.contains(&SECRET[..12]), "{e}");
        assert!(e.contains("65 characters, not shown"), "{e}");
        let e = check_name("bad\u{1b}name").unwrap_err().to_string();
        assert!(e.contains("bad\\u{1b}name"), "{e}");
    }
}
