//! How the sidecar and the reports reach PostgreSQL, and how they name it.
//!
//! `--db` is a connection string as libpq takes it: a `postgres://` URL or
//! `key=value` pairs. It is parsed once, by the driver's own parser (the one that
//! connects), and every message shows the database as it is **rebuilt from the
//! parsed fields without the password** (`PgTarget::shown`), never as the string
//! was typed: a password with `/`, `?`, `@` or `:` in it, percent-encoded, given as
//! `?password=` or as `password=` cannot leak through a pattern that missed it.
//!
//! The password need not be on the command line, where every user of the machine
//! can read it in the process list. As libpq does (the `postgres` crate reads
//! neither), it comes from, in order: the connection string; `PGPASSWORD`; the
//! password file named by `PGPASSFILE`, else `~/.pgpass`, whose first line
//! `host:port:database:user:password` that matches is used, and which is ignored
//! (with a note in any connection error) unless only its owner can read it.
//!
//! It must never print or return the password in anything but the driver's config.

use crate::sidecar::SidecarError;
use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A parsed PostgreSQL connection string.
pub struct PgTarget {
    config: Config,
    shown: String,
}

impl PgTarget {
    /// Parses `db` (`postgres://...`, `postgresql://...` or `key=value ...`).
    pub fn parse(db: &str) -> Result<PgTarget, SidecarError> {
        let config = Config::from_str(db).map_err(|e| SidecarError::ConnectionString {
            db: unparsed(db),
            why: parse_error(&e),
        })?;
        let shown = if is_url(db) {
            shown_url(&config)
        } else {
            shown_pairs(&config)
        };
        Ok(PgTarget { config, shown })
    }

    /// The database for messages: the parsed fields, without any password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the connection string itself holds a password (which the process
    /// list shows to every user of the machine).
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some_and(|p| !p.is_empty())
    }

    /// Connects, with the password from the string, `PGPASSWORD` or the password file.
    pub fn connect(&self) -> Result<Client, SidecarError> {
        let env = Lookup::from_env();
        let mut config = self.config.clone();
        let mut notes = Vec::new();
        if let Some(password) = password(&config, &env, &mut notes) {
            config.password(password);
        }
        config.connect(NoTls).map_err(|e| {
            let mut message = format!("cannot connect: {}", describe(&e));
            for n in &notes {
                let _ = write!(message, "; note: {n}");
            }
            SidecarError::Db {
                db: self.shown.clone(),
                message,
            }
        })
    }
}

/// Whether `db` names a PostgreSQL database (a URL, or libpq `key=value` pairs).
pub fn is_postgres(db: &str) -> bool {
    is_url(db) || is_pairs(db)
}

/// Any `--db` value as messages may show it: a SQLite address as it is, a
/// PostgreSQL one rebuilt without its password, anything else that could hold a
/// password (`scheme://...`, `key=value`) reduced to what cannot.
pub fn mask_db(db: &str) -> String {
    if db.starts_with("sqlite:") {
        return db.to_string();
    }
    if is_postgres(db) {
        return match PgTarget::parse(db) {
            Ok(t) => t.shown,
            Err(_) => unparsed(db),
        };
    }
    if db.contains("://") || db.contains('=') || db.contains('@') {
        return unparsed(db);
    }
    db.to_string()
}

fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// libpq's other form: the string starts with `keyword =`.
fn is_pairs(db: &str) -> bool {
    db.split_once('=').is_some_and(|(key, _)| {
        let key = key.trim();
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}

/// A string that did not parse, for messages: its scheme at most, since where its
/// password is cannot be known.
fn unparsed(db: &str) -> String {
    match db.split_once("://") {
        Some((scheme, _)) if scheme.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            format!("{scheme}://... (not shown: it may hold a password)")
        }
        _ => "the connection string (not shown: it may hold a password)".to_string(),
    }
}

/// Why the driver refused a connection string. Its messages can quote a piece of
/// the string (`unknown option \`x\``, `expected \`=\` but got \`y\``), which may be
/// a piece of a password with a space or `&` in it: only the one naming a known
/// option is repeated.
fn parse_error(e: &postgres::Error) -> String {
    let cause = std::error::Error::source(e).map(|c| c.to_string());
    match cause {
        Some(c) if c.starts_with("invalid value for option `") => c,
        _ => "the driver cannot parse it (use postgres://USER@HOST[:PORT]/DB or libpq \
              key=value pairs, and percent-encode `@`, `/`, `?` and `:` in a URL's password)"
            .to_string(),
    }
}

/// A PostgreSQL error with the server's message, detail and hint when it sent
/// them, or the cause the driver gives (`Connection refused`).
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                let _ = write!(s, " ({d})");
            }
            if let Some(h) = db.hint() {
                let _ = write!(s, "; hint: {h}");
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hosts(config: &Config) -> Vec<String> {
    config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect()
}

fn shown_url(config: &Config) -> String {
    let mut s = String::from("postgres://");
    if let Some(user) = config.get_user() {
        let _ = write!(s, "{}@", percent(user));
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = hosts(config)
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if h.contains(':') && !h.starts_with('/') {
                format!("[{h}]")
            } else {
                percent(h)
            };
            match ports.get(i).or(ports.first()) {
                Some(p) => format!("{h}:{p}"),
                None => h,
            }
        })
        .collect();
    s.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        let _ = write!(s, "/{}", percent(db));
    }
    let mut sep = '?';
    for (key, value) in [
        ("options", config.get_options()),
        ("application_name", config.get_application_name()),
    ] {
        if let Some(v) = value {
            let _ = write!(s, "{sep}{key}={}", percent(v));
            sep = '&';
        }
    }
    s
}

fn shown_pairs(config: &Config) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let hosts = hosts(config);
    let fields = [
        ("host", (!hosts.is_empty()).then(|| hosts.join(","))),
        ("port", (!ports.is_empty()).then(|| ports.join(","))),
        ("user", config.get_user().map(str::to_string)),
        ("dbname", config.get_dbname().map(str::to_string)),
        ("options", config.get_options().map(str::to_string)),
        (
            "application_name",
            config.get_application_name().map(str::to_string),
        ),
    ];
    fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", quote(v))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the password may come from besides the string: the environment, read
/// once (tests build their own).
#[derive(Clone, Debug, Default)]
pub(crate) struct Lookup {
    pub pgpassword: Option<String>,
    /// `PGPASSFILE`.
    pub passfile: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The user the driver connects as when the string names none.
    pub os_user: Option<String>,
}

impl Lookup {
    fn from_env() -> Lookup {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Lookup {
            pgpassword: var("PGPASSWORD"),
            passfile: var("PGPASSFILE").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            os_user: var("USER").or_else(|| var("LOGNAME")),
        }
    }
}

/// The password to use when the string has none, as libpq chooses it; why a
/// password file was passed over goes to `notes`.
pub(crate) fn password(config: &Config, env: &Lookup, notes: &mut Vec<String>) -> Option<String> {
    if config.get_password().is_some_and(|p| !p.is_empty()) {
        return None;
    }
    if let Some(p) = &env.pgpassword {
        return Some(p.clone());
    }
    let path = env
        .passfile
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")))?;
    let text = match read_passfile(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return None,
        Err(why) => {
            notes.push(format!("password file {} ignored: {why}", path.display()));
            return None;
        }
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a socket connection against `localhost`.
        Some(Host::Unix(_)) | None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| env.os_user.clone())
        .unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    let wanted = [host.as_str(), port.as_str(), dbname.as_str(), user.as_str()];
    text.lines().find_map(|line| passfile_match(line, &wanted))
}

/// The password file's text; `None` when it does not exist. Refused (as libpq
/// does) when it is not a plain file or others can read it.
fn read_passfile(path: &Path) -> Result<Option<String>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_file() {
        return Err("it is not a plain file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "group or others can read it (mode {mode:04o}); make it u=rw (chmod 600)"
            ));
        }
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The password on one `host:port:database:user:password` line when its first
/// four fields match `wanted`. `*` matches anything; `\` escapes `:` and `\`.
fn passfile_match(line: &str, wanted: &[&str; 4]) -> Option<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let mut fields: Vec<(String, bool)> = Vec::with_capacity(5);
    let (mut field, mut escaped_any, mut chars) = (String::new(), false, line.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    field.push(next);
                    escaped_any = true;
                }
            }
            ':' if fields.len() < 4 => {
                fields.push((std::mem::take(&mut field), escaped_any));
                escaped_any = false;
            }
            // The password ends at its first unescaped `:`, as libpq reads it.
            ':' => break,
            c => field.push(c),
        }
    }
    if fields.len() < 4 {
        return None;
    }
    let matches = fields
        .iter()
        .zip(wanted)
        .all(|((f, escaped), w)| (f == "*" && !escaped) || f == w);
    matches.then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_PARTS: &[&str] = &["s3cr", "hunter2", "pa/ss", "p%3Fw", "p?w", "se cret"];

    fn assert_masked(db: &str) -> String {
        let shown = mask_db(db);
        for s in SECRET_PARTS {
            assert!(!shown.contains(s), "{db} is shown as {shown}");
        }
        shown
    }

    #[test]
    fn passwords_never_reach_a_message_however_they_are_written() {
        assert_eq!(
            assert_masked("postgres://u:s3cret@h:5433/db?application_name=a"),
            "postgres://u@h:5433/db?application_name=a"
        );
        assert_eq!(
            assert_masked("postgres://u:pa/ss@h/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(
            assert_masked("postgres://u:p?w@h/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(
            assert_masked("postgres://u:p%3Fw%40%3A@h/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(
            assert_masked("postgresql://u@h/db?password=hunter2&options=-c%20search_path%3Ds"),
            "postgres://u@h:5432/db?options=-c%20search_path%3Ds"
        );
        assert_eq!(
            assert_masked("host=h port=5433 user=u password='se cret' dbname=d"),
            "host='h' port='5433' user='u' dbname='d'"
        );
        assert_eq!(assert_masked("host=h password=hunter2"), "host='h'");
        // Unparseable: nothing of it is repeated.
        assert!(assert_masked("password=hunter2 se cret=").contains("not shown"));
        assert!(assert_masked("postgres://u:s3cret@h:notaport/db").contains("not shown"));
        assert!(assert_masked("mysql://u:s3cret@h/db").starts_with("mysql://..."));
        assert_eq!(mask_db("sqlite:a.db"), "sqlite:a.db");
        assert_eq!(mask_db("fillcast.db"), "fillcast.db");
        assert_eq!(mask_db("postgres://h/db"), "postgres://h:5432/db");
        // The driver's reason is kept when it names an option, not a value.
        let e = PgTarget::parse("postgres://u:s3cret@h:99999/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("invalid value for option `port`") && !e.contains("s3cr"),
            "{e}"
        );
    }

    fn config(db: &str) -> Config {
        Config::from_str(db).expect("config")
    }

    fn passfile(text: &str, mode: u32) -> (tempfile::TempDir, Lookup) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let env = Lookup {
            passfile: Some(path),
            ..Lookup::default()
        };
        (dir, env)
    }

    #[test]
    fn the_password_comes_from_the_string_then_pgpassword_then_the_password_file() {
        let file =
            "# comment\nother:5432:*:alice:no\nh:5432:*:alice:from\\:file\\\\x:tail\n*:*:*:*:any\n";
        let (_d, mut env) = passfile(file, 0o600);
        let mut notes = Vec::new();
        let c = config("postgres://alice@h/db");
        assert_eq!(
            password(&c, &env, &mut notes).as_deref(),
            Some("from:file\\x")
        );
        assert_eq!(
            password(&config("postgres://bob@h:6000/db"), &env, &mut notes).as_deref(),
            Some("any")
        );
        env.pgpassword = Some("from-env".into());
        assert_eq!(password(&c, &env, &mut notes).as_deref(), Some("from-env"));
        assert_eq!(
            password(&config("postgres://alice:inline@h/db"), &env, &mut notes),
            None
        );
        assert!(notes.is_empty(), "{notes:?}");

        // The database defaults to the user, the user to the OS user, a socket to localhost.
        let (_d, mut env) = passfile("localhost:5432:carol:carol:sock\n", 0o600);
        env.os_user = Some("carol".into());
        let c = config("host=/var/run/postgresql");
        assert_eq!(password(&c, &env, &mut notes).as_deref(), Some("sock"));
        // A literal `\*` is not a wildcard.
        let (_d, env) = passfile("\\*:*:*:*:lit\n", 0o600);
        assert_eq!(
            password(&config("postgres://u@h/db"), &env, &mut notes),
            None
        );
    }

    #[test]
    fn a_password_file_others_can_read_is_ignored_with_a_note() {
        let (_d, env) = passfile("*:*:*:*:secret\n", 0o644);
        let mut notes = Vec::new();
        assert_eq!(
            password(&config("postgres://u@h/db"), &env, &mut notes),
            None
        );
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("mode 0644") && notes[0].contains("chmod 600"),
            "{notes:?}"
        );
        assert!(!notes[0].contains("secret"));
    }
}
