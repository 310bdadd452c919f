//! `fillcast keys` (issue 15): the real binary, its vault file and everything it
//! prints, searched for the key material it was given.

use crate::support::{fillcast_cmd, text, tmp};
use fillcast_gateways::binance::venue::{AccountKey, TestVenue, TestVenueOptions, VenueAccount};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

const API_KEY: &str = "fcTESTapiKEYq8Zr1X9w2Lm4Vb7Nc0Pd3Se6Tf5Ug8Hh1Ij4Kk7Ll0Mm3Nn6Oo9Pp";
const SECRET: &str = "fcTESTsecretQ1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8L9z0X1c2V3b4N5m6M7";
const RISKY_KEY: &str = "fcTESTriskyKEYw1thdr4wals0000000000000000000000000000000000000000";
const SPOT_KEY: &str = "fcTESTspotKEYn0futures000000000000000000000000000000000000000000";

/// A test venue that knows the three keys above, all with `SECRET`: the first
/// may trade futures only, the second may also withdraw, the third cannot
/// trade futures.
fn venue() -> TestVenue {
    let account = |api_key: &str, withdrawals, futures| VenueAccount {
        api_key: api_key.into(),
        key: AccountKey::Hmac(SECRET.as_bytes().to_vec()),
        withdrawals,
        futures,
    };
    TestVenue::start(
        "127.0.0.1:0",
        TestVenueOptions {
            accounts: vec![
                account(API_KEY, false, true),
                account(RISKY_KEY, true, true),
                account(SPOT_KEY, false, false),
            ],
            symbols: Vec::new(),
        },
    )
    .expect("test venue")
}

/// `fillcast keys ARGS` in `dir` with the master key file `key` (if any) and
/// `input` on standard input.
fn keys(dir: &Path, key: Option<&Path>, args: &[&str], input: &str) -> Output {
    let mut c = fillcast_cmd();
    c.current_dir(dir)
        .arg("keys")
        .args(args)
        .env_remove("FILLCAST_VAULT_KEY")
        .env_remove("FILLCAST_VAULT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match key {
        Some(k) => c.env("FILLCAST_VAULT_KEY_FILE", k),
        None => c.env_remove("FILLCAST_VAULT_KEY_FILE"),
    };
    let mut child = c.spawn().expect("start fillcast keys");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    // A command that refuses before reading all of its input closes the pipe.
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("fillcast keys")
}

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for s in [API_KEY, SECRET] {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "{what} holds key material"
        );
    }
}

#[test]
fn keys_are_added_listed_and_removed_without_their_material_in_any_output_or_file() {
    let d = tmp();
    let dir = d.path();
    let master = dir.join("master.key");
    let venue = venue();
    let url = venue.rest_url();
    let api = ["--api-url", url.as_str()];
    let add = |name: &'static str| -> Vec<&str> { [&["add", name][..], &api[..]].concat() };
    let mut outputs = Vec::new();
    let o = keys(dir, None, &["init-master", "master.key"], "");
    assert!(o.status.success(), "{:?}", text(&o));
    outputs.push(o);

    let input = format!("{API_KEY}\n{SECRET}\n");
    let o = keys(dir, Some(&master), &add("alice"), &input);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("alice") && out.contains("withdrawals no"),
        "{out}"
    );
    outputs.push(o);

    let o = keys(dir, Some(&master), &add("alice"), &input);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("already in the vault"), "{err}");
    outputs.push(o);

    let o = keys(dir, Some(&master), &["list"], "");
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains("alice") && out.contains("binance") && out.contains("hmac"));
    assert!(out.contains("futures yes, withdrawals no"), "{out}");
    outputs.push(o);

    // A key that can withdraw, and one that cannot trade futures: refused at
    // `add`, each with its reason, and the vault does not change.
    let before = std::fs::read(dir.join("keys.vault")).unwrap();
    for (name, api_key, why) in [
        ("risky", RISKY_KEY, "can withdraw"),
        ("spot", SPOT_KEY, "cannot trade futures"),
    ] {
        let o = keys(
            dir,
            Some(&master),
            &add(name),
            &format!("{api_key}\n{SECRET}\n"),
        );
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{name} was added");
        assert!(
            err.contains("refused, not added") && err.contains(why),
            "{err}"
        );
        outputs.push(o);
    }
    // A wrong secret: the venue's own error, named.
    let o = keys(
        dir,
        Some(&master),
        &add("bob"),
        &format!("{API_KEY}\nwrong\n"),
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("-1022"), "{err}");
    outputs.push(o);
    assert_eq!(std::fs::read(dir.join("keys.vault")).unwrap(), before);

    // `check` asks again and records it.
    let o = keys(dir, Some(&master), &[&["check"][..], &api[..]].concat(), "");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("alice") && out.contains("withdrawals no"),
        "{out}"
    );
    outputs.push(o);
    assert_eq!(venue.requests("/sapi/v1/account/apiRestrictions"), 5);

    // A wrong master key opens nothing and says so.
    let other = dir.join("other.key");
    std::fs::write(&other, "ab".repeat(32)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = keys(dir, Some(&other), &["list"], "");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot be opened with this master key"),
        "{err}"
    );
    outputs.push(o);

    // No master key at all: told where it comes from.
    let o = keys(dir, None, &["list"], "");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("FILLCAST_VAULT_KEY_FILE"), "{err}");
    outputs.push(o);

    // A bad kind, an empty secret, a bad name: refused, the vault unchanged.
    let before = std::fs::read(dir.join("keys.vault")).unwrap();
    for (args, input) in [
        (
            &["add", "bob", "--kind", "rsa", "--no-check"][..],
            input.as_str(),
        ),
        (&["add", "bob", "--no-check"][..], "only-an-api-key\n"),
        (&["add", "bad name", "--no-check"][..], input.as_str()),
    ] {
        let o = keys(dir, Some(&master), args, input);
        assert!(!o.status.success(), "{args:?}: {:?}", text(&o));
        outputs.push(o);
    }
    assert_eq!(std::fs::read(dir.join("keys.vault")).unwrap(), before);

    let o = keys(dir, Some(&master), &["remove", "alice"], "");
    assert!(o.status.success(), "{:?}", text(&o));
    outputs.push(o);
    let o = keys(dir, Some(&master), &["list"], "");
    assert!(text(&o).0.contains("no keys"));
    outputs.push(o);

    for o in &outputs {
        assert_no_secret("stdout", &o.stdout);
        assert_no_secret("stderr", &o.stderr);
    }
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        assert_no_secret(&p.display().to_string(), &std::fs::read(&p).unwrap());
    }
}

#[test]
fn keys_help_says_where_secrets_and_the_master_key_come_from() {
    let o = fillcast_cmd().args(["keys", "--help"]).output().unwrap();
    let (out, _) = text(&o);
    assert!(o.status.success());
    for word in [
        "add",
        "list",
        "remove",
        "check",
        "init-master",
        "FILLCAST_VAULT_KEY_FILE",
    ] {
        assert!(out.contains(word), "keys --help lacks {word}:\n{out}");
    }
    let (add, _) = text(
        &fillcast_cmd()
            .args(["keys", "add", "--help"])
            .output()
            .unwrap(),
    );
    assert!(add.contains("standard input"), "{add}");
}

/// A stand-in for the venue at a wrong `--api-url` (a proxy, a server that
/// echoes requests): answers every request with HTTP `status` and the body
/// `answer` makes of the request's head. Its URL.
fn fake_venue(status: u16, answer: fn(&str) -> String) -> String {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 16 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = answer(&String::from_utf8_lossy(&head));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A directory with a master key and a vault holding one key, `alice`.
fn vault_with_alice() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let d = tmp();
    let master = d.path().join("master.key");
    let o = keys(d.path(), None, &["init-master", "master.key"], "");
    assert!(o.status.success(), "{:?}", text(&o));
    let o = keys(
        d.path(),
        Some(&master),
        &["add", "alice", "--no-check"],
        &format!("{API_KEY}\n{SECRET}\n"),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let vault = std::fs::read(d.path().join("keys.vault")).unwrap();
    (d, master, vault)
}

#[test]
fn regression_a_venue_that_echoes_the_request_put_the_api_key_in_stderr() {
    let (d, master, before) = vault_with_alice();
    let json_echo = fake_venue(400, |head| {
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("X-MBX-APIKEY: "))
            .unwrap_or("");
        format!(r#"{{"code":-2015,"msg":"Invalid API-key {key}"}}"#)
    });
    // Cut to its first 200 bytes by the client: a part of the key, not all.
    let html_echo = fake_venue(404, |head| {
        let mut lines: Vec<&str> = head.lines().collect();
        lines.reverse();
        format!("<html>{}{}</html>", "x".repeat(140), lines.join(" "))
    });
    for url in [json_echo, html_echo] {
        let o = keys(
            d.path(),
            Some(&master),
            &["add", "bob", "--api-url", url.as_str()],
            &format!("{API_KEY}\n{SECRET}\n"),
        );
        let (_, err) = text(&o);
        assert!(!o.status.success());
        assert!(err.contains("quotes the key's own material"), "{err}");
        assert!(!err.contains(&API_KEY[10..22]), "{err}");
        assert_no_secret("stderr", &o.stderr);
    }
    assert_eq!(std::fs::read(d.path().join("keys.vault")).unwrap(), before);
}

#[test]
fn regression_a_venue_error_reached_the_terminal_unescaped_and_uncut_and_with_the_signature() {
    let (d, master, _) = vault_with_alice();
    let hostile = fake_venue(400, |_| {
        format!(
            r#"{{"code":-1000,"msg":"\u001b[2J\u001b]0;owned\u0007{}"}}"#,
            "m".repeat(100_000)
        )
    });
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (url, says) in [(hostile, "code -1000"), (down, "Connection")] {
        let o = keys(
            d.path(),
            Some(&master),
            &["check", "--api-url", url.as_str()],
            "",
        );
        let (_, err) = text(&o);
        assert!(!o.status.success());
        assert!(err.contains(says), "{err}");
        assert!(
            !o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07),
            "{err}"
        );
        assert!(err.len() < 1000, "{} bytes of stderr", err.len());
        assert!(!err.contains("signature="), "{err}");
        assert_no_secret("stderr", &o.stderr);
    }
}

#[test]
fn regression_keys_that_can_be_no_key_were_stored_with_no_check() {
    let (d, master, before) = vault_with_alice();
    let pem_body = ED25519_PEM.lines().nth(1).unwrap();
    for (args, input, says) in [
        (
            &["add", "ed", "--kind", "ed25519", "--no-check"][..],
            format!("{API_KEY}\nnot a pem at all\n"),
            "not a PEM block",
        ),
        (
            &["add", "ed", "--kind", "ed25519", "--no-check"][..],
            format!("{API_KEY}\n-----BEGIN PRIVATE KEY-----\n{pem_body}\n"),
            "its secret",
        ),
        (
            &["add", "two", "--no-check"][..],
            format!("{API_KEY}\n{SECRET}\n{SECRET}\n"),
            "more than one line",
        ),
        (
            &["add", "one", "--no-check"][..],
            format!("{API_KEY} {SECRET}\n"),
            "is empty",
        ),
        (
            &["add", "spaced", "--no-check"][..],
            format!("{API_KEY} x\n{SECRET}\n"),
            "the API key has spaces",
        ),
        (
            &["add", &API_KEY[..64], "--no-check"][..],
            format!("{}\n{SECRET}\n", &API_KEY[..64]),
            "the name given is the key itself",
        ),
        (
            &["add", "huge", "--no-check"][..],
            format!("{API_KEY}\n{}\n", "é".repeat(50_000)),
            "more than",
        ),
        (
            &["add", "long", "--no-check"][..],
            format!("{API_KEY}\n{}\n", "s".repeat(5000)),
            "more than the 4096",
        ),
        (
            &["add", "bin", "--no-check"][..],
            format!("{API_KEY}\n\u{1}{SECRET}\n"),
            "control characters",
        ),
    ] {
        let o = keys(d.path(), Some(&master), args, &input);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{args:?} was stored");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_no_secret("stderr", &o.stderr);
        assert!(!err.contains(pem_body), "{err}");
    }
    // Not UTF-8, and cut off before the secret: refused the same way.
    for input in [&b"\xff\xfe\n\xff"[..], API_KEY.as_bytes()] {
        let mut c = fillcast_cmd();
        let o = c
            .current_dir(d.path())
            .args(["keys", "add", "raw", "--no-check"])
            .env("FILLCAST_VAULT_KEY_FILE", &master)
            .env_remove("FILLCAST_VAULT_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                let _ = child.stdin.take().expect("stdin").write_all(input);
                child.wait_with_output()
            })
            .expect("fillcast keys add");
        assert!(!o.status.success());
        assert_no_secret("stderr", &o.stderr);
    }
    assert_eq!(std::fs::read(d.path().join("keys.vault")).unwrap(), before);
    let o = keys(d.path(), Some(&master), &["list"], "");
    assert!(o.status.success(), "the vault still opens: {:?}", text(&o));
}

#[test]
fn regression_a_plain_http_api_url_sent_the_api_key_in_the_clear() {
    let (d, master, before) = vault_with_alice();
    for args in [
        &["add", "bob", "--api-url", "http://api.binance.com"][..],
        &["check", "--api-url", "http://127.0.0.1.example.com"][..],
        &["check", "--api-url", "http://127.0.0.1@example.com"][..],
        &["check", "--api-url", "http://example.com\\@127.0.0.1/"][..],
    ] {
        let o = keys(
            d.path(),
            Some(&master),
            args,
            &format!("{API_KEY}\n{SECRET}\n"),
        );
        let (_, err) = text(&o);
        assert!(!o.status.success());
        assert!(err.contains("in the clear"), "{err}");
    }
    assert_eq!(std::fs::read(d.path().join("keys.vault")).unwrap(), before);
}

#[test]
fn regression_master_keys_were_taken_from_both_variables_or_from_a_passphrase() {
    let (d, master, _) = vault_with_alice();
    let hex = std::fs::read_to_string(&master).unwrap();
    let run = |file: Option<&str>, env: Option<&str>| {
        let mut c = fillcast_cmd();
        c.current_dir(d.path())
            .args(["keys", "list"])
            .env_remove("FILLCAST_VAULT_KEY_FILE")
            .env_remove("FILLCAST_VAULT_KEY");
        if let Some(f) = file {
            c.env("FILLCAST_VAULT_KEY_FILE", f);
        }
        if let Some(k) = env {
            c.env("FILLCAST_VAULT_KEY", k);
        }
        c.output().expect("fillcast keys list")
    };
    let path = master.to_str().unwrap();
    let o = run(None, Some(hex.trim()));
    assert!(o.status.success(), "{:?}", text(&o));
    for (file, env, says) in [
        (Some(path), Some(hex.trim()), "both"),
        (Some(""), None, "set but empty"),
        (
            None,
            Some("correct horse battery staple 123"),
            "64 hex digits",
        ),
    ] {
        let o = run(file, env);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{file:?} {env:?}");
        assert!(err.contains(says), "{err}");
    }
}

/// An Ed25519 private key made for this test (`openssl genpkey -algorithm ed25519`).
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDvzWYPYprWJQrgy//h+vXzWOkjMn58PD9IOcvVtBpEk
-----END PRIVATE KEY-----
";

#[test]
fn regression_an_ed25519_private_key_typed_on_a_terminal_was_echoed() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    // `script` (util-linux) runs the command on a pseudo-terminal.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no `script` to make a terminal with: skipped");
        return;
    }
    let (d, master, _) = vault_with_alice();
    let cmd = format!(
        "'{}' keys add ed --kind ed25519 --no-check",
        env!("CARGO_BIN_EXE_fillcast")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(d.path())
        .env("FILLCAST_VAULT_KEY_FILE", &master)
        .env_remove("FILLCAST_VAULT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut terminal = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = terminal.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut shown = Vec::new();
    let mut wait_for = |what: &str| {
        let until = Instant::now() + Duration::from_secs(20);
        while !shown.windows(what.len()).any(|w| w == what.as_bytes()) {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => shown.extend(b),
                Err(_) => panic!(
                    "no `{what}` on the terminal: {}",
                    String::from_utf8_lossy(&shown)
                ),
            }
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    wait_for("API key:");
    // The prompt is written before echo is turned off.
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(format!("{API_KEY}\n").as_bytes()).unwrap();
    wait_for("-----END line");
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(ED25519_PEM.as_bytes()).unwrap();
    wait_for("added to");
    let status = child.wait().expect("script");
    drop(stdin);
    let shown = String::from_utf8_lossy(&shown);
    assert!(status.success(), "{shown}");
    let pem_body = ED25519_PEM.lines().nth(1).unwrap();
    assert!(!shown.contains(&pem_body[..16]), "echoed:\n{shown}");
    assert!(!shown.contains(&API_KEY[..16]), "echoed:\n{shown}");
}

#[test]
fn regression_check_of_a_mistyped_vault_path_made_a_vault_there() {
    let (d, master, _) = vault_with_alice();
    let o = keys(
        d.path(),
        Some(&master),
        &[
            "--vault",
            "typo.vault",
            "check",
            "--api-url",
            "http://127.0.0.1:1",
        ],
        "",
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("typo.vault: no keys"), "{out}");
    let made: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|f| f.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("typo"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
}
