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
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
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
