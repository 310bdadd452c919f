//! `fillcast keys`: the key vault's command line (issue 15).
//!
//! Secrets come in on standard input only, never as arguments (which `ps` and
//! shell histories show); on a terminal they are read without echo. Nothing this
//! command prints holds key material: `list` shows names, venues, kinds and
//! permissions.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fillcast_gateways::vault::{self, KeyKind, MasterKey, Vault, VaultEntry};
use secrecy::SecretString;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Args)]
pub struct KeysArgs {
    /// The vault file (default: $FILLCAST_VAULT, else `keys.vault` here). Its
    /// master key comes from $FILLCAST_VAULT_KEY_FILE (a file only its owner can
    /// read) or $FILLCAST_VAULT_KEY (64 hex digits), never from an argument.
    #[arg(long, global = true)]
    vault: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCmd,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Make a new random master key in FILE (mode 0600; an existing file is
    /// never overwritten). Point $FILLCAST_VAULT_KEY_FILE at it.
    InitMaster {
        /// Where the master key goes.
        file: PathBuf,
    },
    /// Add a key under NAME. Reads the API key (first line) and the secret (the
    /// rest: an HMAC secret on one line, or an Ed25519 private key in PKCS#8 PEM)
    /// from standard input, asks the venue what the key may do, and refuses a key
    /// that can withdraw or cannot trade futures.
    Add {
        /// The name config refers to the key by (A-Z, a-z, 0-9, `_`, `-`, `.`).
        name: String,
        /// The venue kind the key is for.
        #[arg(long, default_value = "binance")]
        venue: String,
        /// How the venue checks the key's signatures: `hmac` or `ed25519`.
        #[arg(long, default_value = "hmac")]
        kind: String,
        #[command(flatten)]
        check: CheckArgs,
        /// Store the key without asking the venue (no network here); the engine
        /// asks at every start and refuses it there if it can withdraw.
        #[arg(long)]
        no_check: bool,
    },
    /// Ask the venue again what each key (or NAME) may do, record it, and fail
    /// if any key can withdraw or cannot trade futures.
    Check {
        /// Only this key.
        name: Option<String>,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// List the keys: names, venues, kinds, and what the venue said they may do
    /// when last checked. Never their secrets.
    List,
    /// Remove the key NAME.
    Remove {
        /// The key's name.
        name: String,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The venue's REST base URL for `/sapi/v1/account/apiRestrictions`
    /// (Binance: `https://api.binance.com`; a test venue's for tests).
    #[arg(long, default_value = "https://api.binance.com")]
    api_url: String,
}

pub fn run(args: &KeysArgs) -> Result<()> {
    if let KeysCmd::InitMaster { file } = &args.command {
        MasterKey::generate().write_new(file)?;
        let shown = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        println!(
            "master key written to {} (mode 0600); set {}={} for `fillcast keys` and `fillcast run`",
            shown.display(),
            vault::ENV_KEY_FILE,
            shown.display()
        );
        return Ok(());
    }
    let path = vault_path(args.vault.as_deref());
    let key = MasterKey::from_env()?;
    let mut v = Vault::open(&path, &key)?;
    match &args.command {
        KeysCmd::InitMaster { .. } => unreachable!("handled above"),
        KeysCmd::List => {
            if v.entries().is_empty() {
                println!("{}: no keys", path.display());
            }
            for e in v.entries() {
                println!("{}", describe(e));
            }
        }
        KeysCmd::Remove { name } => {
            let gone = v.remove(name)?;
            v.save(&key)?;
            println!("removed `{}` from {}", gone.name, path.display());
        }
        KeysCmd::Check { name, check } => {
            check_url(&check.api_url)?;
            let names: Vec<String> = match name {
                Some(n) => {
                    vault::check_name(n)?;
                    vec![v
                        .get(n)
                        .ok_or_else(|| vault::VaultError::NotFound(n.clone()))?
                        .name
                        .clone()]
                }
                None => v.entries().iter().map(|e| e.name.clone()).collect(),
            };
            if names.is_empty() {
                // Nothing to record: a mistyped --vault must not become a vault.
                println!("{}: no keys", path.display());
                return Ok(());
            }
            let mut refused = Vec::new();
            for n in &names {
                let e = v.get(n).expect("listed above");
                let p = ask_venue(e, &check.api_url)?;
                v.set_permissions(n, p)?;
                let e = v.get(n).expect("listed above");
                match vault::admit(&p) {
                    Ok(()) => println!("{}", describe(e)),
                    Err(why) => {
                        println!("{}  REFUSED: {why}", describe(e));
                        refused.push(n.clone());
                    }
                }
            }
            v.save(&key)?;
            if !refused.is_empty() {
                bail!(
                    "{} refused (remove or replace them): {}",
                    if refused.len() == 1 {
                        "a key is"
                    } else {
                        "keys are"
                    },
                    refused.join(", ")
                );
            }
        }
        KeysCmd::Add {
            name,
            venue,
            kind,
            check,
            no_check,
        } => {
            let Some(kind) = KeyKind::parse(kind) else {
                bail!("--kind `{kind}`: expected `hmac` or `ed25519`");
            };
            if venue != "binance" {
                bail!("--venue `{venue}`: the vault holds keys for `binance` venues");
            }
            vault::check_name(name)?;
            if v.get(name).is_some() {
                return Err(vault::VaultError::Duplicate(name.clone()).into());
            }
            if !*no_check {
                check_url(&check.api_url)?;
            }
            let (api_key, secret) = read_key(kind)?;
            let mut entry = VaultEntry {
                name: name.clone(),
                venue: venue.clone(),
                kind,
                api_key,
                secret,
                permissions: None,
            };
            // All of it before the venue is asked, and with --no-check too: a
            // key stored unchecked must still be one.
            entry.check()?;
            check_material(&entry)?;
            if !*no_check {
                let p = ask_venue(&entry, &check.api_url)?;
                if let Err(why) = vault::admit(&p) {
                    bail!("key `{name}` refused, not added: {why}");
                }
                entry.permissions = Some(p);
            }
            v.add(entry)?;
            v.save(&key)?;
            let e = v.get(name).expect("just added");
            println!("added to {}: {}", path.display(), describe(e));
        }
    }
    Ok(())
}

/// What the venue says `e` may do (`apiRestrictions`, signed with `e`).
fn ask_venue(e: &VaultEntry, api_url: &str) -> Result<vault::Permissions> {
    use fillcast_gateways::binance::rest::RestClient;
    use secrecy::ExposeSecret;
    let signer = signer(e)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    RestClient::new(api_url, std::time::Duration::from_secs(10), 5000)
        .api_restrictions(e.api_key.expose_secret(), &signer, now_ms)
        .map_err(|err| anyhow::anyhow!(shown(&err.to_string(), e)))
        .with_context(|| {
            format!(
                "key `{}`: asking {api_url} what it may do (--no-check stores it unchecked; the engine asks at every start)",
                e.name
            )
        })
}

/// The signer `e`'s secret makes, or why it makes none.
fn signer(e: &VaultEntry) -> Result<fillcast_gateways::binance::sign::Signer> {
    use fillcast_gateways::binance::sign::Signer;
    use secrecy::ExposeSecret;
    let secret = e.secret.expose_secret().as_bytes();
    match e.kind {
        KeyKind::Hmac => Signer::hmac(secret),
        KeyKind::Ed25519 => Signer::ed25519_pem(secret),
    }
    .with_context(|| format!("key `{}`: its secret", e.name))
}

/// What `add` refuses before storing a key, beyond `VaultEntry::check`: a key
/// given as its own name (it would be printed and put in config files), an API
/// key or HMAC secret with spaces or control characters inside (two lines
/// where one was meant, or the key and the secret on one line), and a secret
/// that makes no signer (a PEM that is not an Ed25519 key).
fn check_material(e: &VaultEntry) -> Result<()> {
    use secrecy::ExposeSecret;
    let (api_key, secret) = (e.api_key.expose_secret(), e.secret.expose_secret());
    if e.name == api_key || e.name == secret {
        bail!("key `<not shown>`: the name given is the key itself; name it as config will refer to it (e.g. `alice`)");
    }
    let one_word = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !one_word(api_key) {
        bail!("key `{}`: the API key has spaces or control characters inside; the first line of input is the API key alone", e.name);
    }
    if e.kind == KeyKind::Hmac && !one_word(secret) {
        bail!("key `{}`: the secret has spaces, control characters or more than one line inside; an HMAC secret is one word on the second line", e.name);
    }
    signer(e).map(drop)
}

/// `--api-url` as a key may be sent to: HTTPS, or plain HTTP to this machine
/// (a test venue). The API key travels in a header, in the clear over HTTP.
fn check_url(url: &str) -> Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        // Strict, not a URL parser's leniency: no user info (`127.0.0.1@host`)
        // and no character a parser might read otherwise (`host\@127.0.0.1`).
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let plain = authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'[' | b']'));
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        if plain && matches!(host, "127.0.0.1" | "localhost" | "::1") {
            return Ok(());
        }
    }
    bail!("--api-url `{url}`: expected https:// (or http:// to 127.0.0.1, localhost or [::1]): the API key would cross the network in the clear")
}

/// A venue's error as it may be printed. A venue, or a proxy or wrong URL in
/// its place, can echo the request, the key header and the signed query
/// included: the signed query is cut, the rest cut short, a message that then
/// quotes any 12 characters of the key or the secret is withheld, and control
/// characters are escaped.
fn shown(text: &str, e: &VaultEntry) -> String {
    use secrecy::ExposeSecret;
    const QUOTE_MIN: usize = 12;
    const SHOWN_MAX: usize = 400;
    let mut unsigned = String::with_capacity(text.len().min(4 * SHOWN_MAX));
    let mut rest = text;
    while let Some(at) = rest.find('?') {
        let len = rest[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "&=%._-".contains(c)))
            .map_or(rest.len() - at, |n| n + 1);
        unsigned.push_str(&rest[..at]);
        if !rest[at..at + len].contains("signature=") {
            unsigned.push_str(&rest[at..at + len]);
        }
        rest = &rest[at + len..];
    }
    unsigned.push_str(rest);
    let cut: String = unsigned.chars().take(SHOWN_MAX).collect();
    let quotes = |material: &str| {
        let m = material.as_bytes();
        m.windows(QUOTE_MIN.min(m.len()).max(1))
            .any(|w| cut.as_bytes().windows(w.len()).any(|t| t == w))
    };
    if quotes(e.api_key.expose_secret()) || quotes(e.secret.expose_secret()) {
        return "the venue's answer quotes the key's own material, so it is not shown (is --api-url a proxy, or a server that echoes requests?)".into();
    }
    let mut out = String::with_capacity(cut.len() + 8);
    for c in cut.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if unsigned.chars().count() > SHOWN_MAX {
        out.push('…');
    }
    out
}

fn vault_path(given: Option<&Path>) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FILLCAST_VAULT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("keys.vault"))
}

fn describe(e: &VaultEntry) -> String {
    let perms = match e.permissions {
        None => "permissions not checked".to_string(),
        Some(p) => format!(
            "futures {}, withdrawals {} (checked at {} ms)",
            if p.futures { "yes" } else { "no" },
            if p.withdrawals { "YES" } else { "no" },
            p.checked_at_ms
        ),
    };
    format!("{}  {}  {}  {perms}", e.name, e.venue, e.kind.name())
}

/// The most `add` reads from standard input: an API key and a secret of
/// `vault::KEY_TEXT_MAX` each, and line ends.
const INPUT_MAX: usize = 2 * vault::KEY_TEXT_MAX + 8;
/// The most lines of a PEM typed or pasted on a terminal.
const PEM_LINES_MAX: usize = 64;

/// The API key and secret from standard input: without echo on a terminal.
fn read_key(kind: KeyKind) -> Result<(SecretString, SecretString)> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let api =
            Zeroizing::new(rpassword::prompt_password("API key: ").context("reading the API key")?);
        let secret = match kind {
            KeyKind::Hmac => Zeroizing::new(
                rpassword::prompt_password("secret: ").context("reading the secret")?,
            ),
            KeyKind::Ed25519 => read_pem()?,
        };
        return Ok(secrets(&api, &secret));
    }
    // Read once, through a descriptor of its own, into a buffer of its final
    // size: `Stdin`'s buffer and a growing one would leave copies of the
    // secret in memory that is never zeroed.
    let raw = std::os::fd::AsFd::as_fd(&stdin)
        .try_clone_to_owned()
        .context("standard input")?;
    let mut input = Zeroizing::new(Vec::with_capacity(INPUT_MAX + 1));
    std::fs::File::from(raw)
        .take(INPUT_MAX as u64 + 1)
        .read_to_end(&mut input)
        .context("reading standard input")?;
    if input.len() > INPUT_MAX {
        bail!("standard input: more than {INPUT_MAX} bytes; expected an API key line and a secret");
    }
    let text = std::str::from_utf8(&input).map_err(|_| {
        anyhow::anyhow!("standard input is not UTF-8 text; expected an API key line and a secret")
    })?;
    let (api, secret) = text.split_once('\n').unwrap_or((text, ""));
    Ok(secrets(api, secret))
}

/// A PEM private key from the terminal, a line at a time without echo, to its
/// `-----END` line (or Ctrl-D).
fn read_pem() -> Result<Zeroizing<String>> {
    eprintln!("private key (PKCS#8 PEM), to its -----END line (not shown as typed or pasted):");
    let mut pem = Zeroizing::new(String::with_capacity(vault::KEY_TEXT_MAX + 2));
    for _ in 0..PEM_LINES_MAX {
        let line = match rpassword::read_password() {
            Ok(l) => Zeroizing::new(l),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(pem),
            Err(e) => return Err(e).context("reading the private key"),
        };
        if pem.len() + line.len() + 1 > pem.capacity() {
            bail!("the private key: more than {} bytes", vault::KEY_TEXT_MAX);
        }
        pem.push_str(&line);
        pem.push('\n');
        if line.trim_start().starts_with("-----END") {
            return Ok(pem);
        }
    }
    bail!("the private key: more than {PEM_LINES_MAX} lines without an -----END line")
}

/// Trimmed copies, each in its zeroing box; the inputs are zeroed by their owners.
fn secrets(api: &str, secret: &str) -> (SecretString, SecretString) {
    (
        SecretString::from(api.trim().to_string()),
        SecretString::from(secret.trim().to_string()),
    )
}
