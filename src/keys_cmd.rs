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
use std::io::{BufRead, IsTerminal, Read};
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
            let names: Vec<String> = match name {
                Some(n) => vec![v
                    .get(n)
                    .ok_or_else(|| vault::VaultError::NotFound(n.clone()))?
                    .name
                    .clone()],
                None => v.entries().iter().map(|e| e.name.clone()).collect(),
            };
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
            if !vault::valid_name(name) {
                return Err(vault::VaultError::BadName(name.chars().take(64).collect()).into());
            }
            if v.get(name).is_some() {
                return Err(vault::VaultError::Duplicate(name.clone()).into());
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
    use fillcast_gateways::binance::sign::Signer;
    use secrecy::ExposeSecret;
    let secret = e.secret.expose_secret().as_bytes();
    let signer = match e.kind {
        KeyKind::Hmac => Signer::hmac(secret),
        KeyKind::Ed25519 => Signer::ed25519_pem(secret),
    }
    .with_context(|| format!("key `{}`: its secret", e.name))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    RestClient::new(api_url, std::time::Duration::from_secs(10), 5000)
        .api_restrictions(e.api_key.expose_secret(), &signer, now_ms)
        .with_context(|| {
            format!(
                "key `{}`: asking {api_url} what it may do (--no-check stores it unchecked; the engine asks at every start)",
                e.name
            )
        })
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
            KeyKind::Ed25519 => {
                eprintln!("private key (PKCS#8 PEM), then end of input (Ctrl-D):");
                let mut pem = Zeroizing::new(String::new());
                stdin
                    .lock()
                    .read_to_string(&mut pem)
                    .context("reading the private key")?;
                pem
            }
        };
        return Ok(secrets(&api, &secret));
    }
    let mut lock = stdin.lock();
    let mut api = Zeroizing::new(String::new());
    lock.read_line(&mut api).context("reading the API key")?;
    let mut secret = Zeroizing::new(String::new());
    lock.read_to_string(&mut secret)
        .context("reading the secret")?;
    Ok(secrets(&api, &secret))
}

/// Trimmed copies, each in its zeroing box; the inputs are zeroed by their owners.
fn secrets(api: &str, secret: &str) -> (SecretString, SecretString) {
    (
        SecretString::from(api.trim().to_string()),
        SecretString::from(secret.trim().to_string()),
    )
}
