//! Issue 10, finding 11: database passwords and the files the SQL side writes,
//! through the real `fillcast` binary. A `--db` password must appear in no
//! message however it is written; it must be accepted from `PGPASSWORD` and the
//! password file (checked against a stand-in server that asks for a cleartext
//! password and records what it got); SQLite databases and report files must be
//! created readable by their owner only, even under umask 022.
//!
//! The PostgreSQL part that needs a real server reads `FILLCAST_TEST_PG` and
//! skips, saying why, without it.

use fillcast_sql::sidecar::pg::{Client, NoTls};
use fillcast_sql::sidecar::synth::{Synth, SynthSpec};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{fillcast_cmd, text, tmp};

/// A small journal written by the real core.
fn journal(dir: &Path) -> PathBuf {
    let j = dir.join("journal");
    let mut s = Synth::create(&j, &SynthSpec::default()).expect("journal");
    s.leader_fills(20).expect("fills");
    j
}

/// `fillcast` with no PostgreSQL password in its environment: the test's own
/// `PGPASSWORD`, `PGPASSFILE` and `~/.pgpass` must not leak into it.
fn clean(home: &Path) -> Command {
    let mut c = fillcast_cmd();
    c.env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env("HOME", home);
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run fillcast")
}

/// Every form of `secret` that would give it away.
fn forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_string()];
    let encoded: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    v.push(encoded);
    v
}

fn assert_hidden(o: &Output, secret: &str, what: &str) {
    let (out, err) = text(o);
    for form in forms(secret) {
        assert!(
            !out.contains(&form) && !err.contains(&form),
            "{what}: `{form}` shown:\nstdout: {out}\nstderr: {err}"
        );
    }
}

#[test]
fn regression_a_db_password_appears_in_no_message_however_it_is_written() {
    let t = tmp();
    let j = journal(t.path());
    // (--db, its password): each refused or unreachable (port 1).
    let cases = [
        ("postgres://u:pa/ss?w@127.0.0.1:1/db", "pa/ss?w"),
        (
            "postgres://u:s3cr%2Fet%3F%40%3A@127.0.0.1:1/db",
            "s3cr/et?@:",
        ),
        ("postgres://u:colon:pw@127.0.0.1:1/db", "colon:pw"),
        (
            "postgresql://u@127.0.0.1:1/db?password=q-secret",
            "q-secret",
        ),
        (
            "postgres://u@127.0.0.1:1/db?application_name=x&password=q2-secret",
            "q2-secret",
        ),
        (
            "host=127.0.0.1 port=1 user=u password=kv-secret dbname=db",
            "kv-secret",
        ),
        (
            "host=127.0.0.1 port=1 user=u password='kv secret/?@:' dbname=db",
            "kv secret/?@:",
        ),
        (
            "postgres://u:bad-port-secret@127.0.0.1:x/db",
            "bad-port-secret",
        ),
        ("password=kv-unparsed se cret=", "kv-unparsed"),
        ("mysql://u:my-secret@h/db", "my-secret"),
    ];
    for (db, secret) in cases {
        let mut c = clean(t.path());
        c.args(["sidecar", "--journal"]).arg(&j).args(["--db", db]);
        let o = run(c);
        assert!(!o.status.success(), "sidecar --db {db}");
        assert_hidden(&o, secret, &format!("sidecar --db {db}"));
        let mut c = clean(t.path());
        c.args(["report", "--db", db]);
        let o = run(c);
        assert!(!o.status.success(), "report --db {db}");
        assert_hidden(&o, secret, &format!("report --db {db}"));
        let (_, err) = text(&o);
        assert!(err.contains("fillcast: "), "report --db {db}: {err}");
    }
}

/// A stand-in PostgreSQL server: asks each client for a cleartext password,
/// sends what it got (or `None`) to the test, and refuses the login.
fn password_server() -> (u16, mpsc::Receiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let got = login(&mut s);
            if tx.send(got).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn read_i32(s: &mut impl Read) -> Option<i32> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).ok()?;
    Some(i32::from_be_bytes(b))
}

/// One connection: startup, `AuthenticationCleartextPassword`, the password
/// message, then an `ErrorResponse`.
fn login(s: &mut std::net::TcpStream) -> Option<String> {
    let len = usize::try_from(read_i32(s)?).ok()?;
    let mut startup = vec![0u8; len.checked_sub(4)?];
    s.read_exact(&mut startup).ok()?;
    s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).ok()?;
    let mut kind = [0u8; 1];
    let got = match s.read_exact(&mut kind) {
        Ok(()) if kind[0] == b'p' => {
            let len = usize::try_from(read_i32(s)?).ok()?;
            let mut body = vec![0u8; len.checked_sub(4)?];
            s.read_exact(&mut body).ok()?;
            Some(String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned())
        }
        _ => None,
    };
    let mut fields = Vec::new();
    for (code, text) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28P01"),
        (b'M', "password authentication failed (stand-in server)"),
    ] {
        fields.push(code);
        fields.extend_from_slice(text.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
    msg.extend_from_slice(&fields);
    let _ = s.write_all(&msg);
    got
}

fn private_file(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn regression_the_password_comes_from_pgpassword_or_the_password_file() {
    let t = tmp();
    let j = journal(t.path());
    let (port, got) = password_server();
    let db = format!("postgres://alice@127.0.0.1:{port}/books");
    let wait = |what: &str| -> Option<String> {
        got.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what}: the client never connected"))
    };
    let home = t.path().join("home");
    std::fs::create_dir(&home).expect("home");

    // PGPASSWORD, for both commands.
    let mut c = clean(&home);
    c.env("PGPASSWORD", "env-pw/?@:")
        .args(["sidecar", "--journal"])
        .arg(&j)
        .args(["--db", &db]);
    let o = run(c);
    assert_eq!(wait("PGPASSWORD").as_deref(), Some("env-pw/?@:"));
    assert!(!o.status.success());
    assert_hidden(&o, "env-pw/?@:", "PGPASSWORD");
    assert!(
        text(&o).1.contains("password authentication failed"),
        "{}",
        text(&o).1
    );
    let mut c = clean(&home);
    c.env("PGPASSWORD", "env-pw-2")
        .args(["report", "--db", &db]);
    let o = run(c);
    assert_eq!(wait("report PGPASSWORD").as_deref(), Some("env-pw-2"));
    assert_hidden(&o, "env-pw-2", "report PGPASSWORD");

    // PGPASSFILE: the first matching line; `\:` is a colon.
    let file = t.path().join("pgpass");
    private_file(
        &file,
        &format!(
            "# fillcast\n127.0.0.1:{port}:other:alice:wrong\n127.0.0.1:{port}:books:alice:file\\:pw\n*:*:*:*:wrong\n"
        ),
        0o600,
    );
    let mut c = clean(&home);
    c.env("PGPASSFILE", &file)
        .args(["sidecar", "--journal"])
        .arg(&j)
        .args(["--db", &db]);
    let o = run(c);
    assert_eq!(wait("PGPASSFILE").as_deref(), Some("file:pw"));
    assert_hidden(&o, "file:pw", "PGPASSFILE");

    // ~/.pgpass, and a connection string's own password before it.
    private_file(&home.join(".pgpass"), "*:*:*:alice:home-pw\n", 0o600);
    let mut c = clean(&home);
    c.args(["report", "--db", &db]);
    run(c);
    assert_eq!(wait("~/.pgpass").as_deref(), Some("home-pw"));
    let mut c = clean(&home);
    c.args(["report", "--db", &db.replace("alice@", "alice:inline-pw@")]);
    let o = run(c);
    assert_eq!(wait("inline").as_deref(), Some("inline-pw"));
    assert_hidden(&o, "inline-pw", "inline");
    assert!(text(&o).1.contains("process list"), "{}", text(&o).1);

    // A password file others can read is ignored, and the error says why.
    private_file(&home.join(".pgpass"), "*:*:*:alice:home-pw\n", 0o644);
    let mut c = clean(&home);
    c.args(["sidecar", "--journal"]).arg(&j).args(["--db", &db]);
    let o = run(c);
    assert_eq!(wait("0644 file"), None);
    let (_, err) = text(&o);
    assert!(
        err.contains(".pgpass ignored") && err.contains("mode 0644"),
        "{err}"
    );
    assert_hidden(&o, "home-pw", "0644 file");
}

/// Runs `fillcast ARGS` under umask 022, the usual default, which used to leave
/// the files it made readable by everyone.
fn under_umask_022(home: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_fillcast"))
        .args(args)
        .env_remove("PGPASSWORD")
        .env("HOME", home);
    let o = c.output().expect("run fillcast");
    assert!(o.status.success(), "{:?}: {}", args, text(&o).1);
    o
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn regression_sqlite_databases_and_reports_are_created_owner_only() {
    let t = tmp();
    let j = journal(t.path());
    let db = t.path().join("fc.db");
    let url = format!("sqlite:{}", db.display());
    let os = |s: &str| std::ffi::OsString::from(s);
    under_umask_022(
        t.path(),
        &[
            &os("sidecar"),
            &os("--journal"),
            j.as_os_str(),
            &os("--db"),
            &os(&url),
        ],
    );
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    for side in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{side}", db.display()));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    // New report files, and one that was there, world-readable, replaced.
    let (json, html) = (t.path().join("r.json"), t.path().join("r.html"));
    private_file(&html, "old", 0o644);
    under_umask_022(
        t.path(),
        &[
            &os("report"),
            &os("--db"),
            &os(&url),
            &os("--json"),
            json.as_os_str(),
            &os("--html"),
            html.as_os_str(),
        ],
    );
    assert_eq!(mode(&json), 0o600);
    assert_eq!(mode(&html), 0o600);
    assert!(std::fs::read_to_string(&html)
        .expect("html")
        .contains("<html"));
    let left: Vec<_> = std::fs::read_dir(t.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".fillcast-report")
        })
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn the_help_of_the_sql_commands_says_how_to_give_a_password() {
    for cmd in ["sidecar", "report"] {
        let o = run({
            let mut c = fillcast_cmd();
            c.args([cmd, "--help"]);
            c
        });
        let (out, _) = text(&o);
        assert!(
            out.contains("PGPASSWORD") && out.contains("~/.pgpass") && out.contains("0600"),
            "{cmd} --help:\n{out}"
        );
    }
}

/// Against a real server (trust authentication accepts any password): a password
/// in the URL reaches no progress line, summary, report or error.
#[test]
fn a_password_in_the_url_is_in_no_output_of_a_real_run() {
    let Ok(base) = std::env::var("FILLCAST_TEST_PG") else {
        println!(
            "skipped: FILLCAST_TEST_PG is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    let Ok(mut admin) = Client::connect(&base, NoTls) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no PostgreSQL at {base} under CI"
        );
        println!("skipped: PostgreSQL at {base} is unreachable");
        return;
    };
    let schema = format!("fc_secrets_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .expect("schema");
    let secret = "real/pw?@x";
    let Some((scheme, rest)) = base.split_once("://") else {
        panic!("FILLCAST_TEST_PG is not a URL: {base}");
    };
    let Some((user, host)) = rest.split_once('@') else {
        panic!("FILLCAST_TEST_PG has no user: {base}");
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{scheme}://{user}:{}@{host}{sep}options=-c%20search_path%3D{schema}",
        secret
            .replace('/', "%2F")
            .replace('?', "%3F")
            .replace('@', "%40")
    );
    let t = tmp();
    let j = journal(t.path());
    let mut c = clean(t.path());
    c.args(["sidecar", "--progress", "0.001", "--journal"])
        .arg(&j)
        .args(["--db", &url]);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_hidden(&o, secret, "sidecar");
    assert!(text(&o).0.contains("sidecar: "), "{}", text(&o).0);
    let mut c = clean(t.path());
    c.args(["report", "--db", &url]);
    let o = run(c);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_hidden(&o, secret, "report");
    // An error after connecting names the database: another journal.
    let other = journal(&t.path().join("other"));
    let mut c = clean(t.path());
    c.args(["sidecar", "--journal"])
        .arg(&other)
        .args(["--db", &url]);
    let o = run(c);
    assert!(!o.status.success());
    assert_hidden(&o, secret, "another journal");
    assert!(text(&o).1.contains(&schema), "{}", text(&o).1);
    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
}
