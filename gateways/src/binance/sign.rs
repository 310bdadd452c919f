//! Binance request signatures: HMAC-SHA256 (hex) and Ed25519 (base64), and the
//! WebSocket API's signing payload (the parameters sorted by name, `k=v&k=v`).
//!
//! Owns the follower's signing key for as long as a gateway holds it, in a form
//! that cannot be printed: every type here writes its `Debug` by hand, and no
//! error carries key material. Signing allocates nothing: a signature is a stack
//! buffer and the payload goes into a buffer the caller reuses.
//!
//! Never does: I/O, clocks, or the choice of which parameters a request carries
//! (that is `wsapi`); REST's unsorted "sign exactly what is sent" string is the
//! caller's, signed by the same `Signer::sign`.
//!
//! Checked against the documentation's own vectors (docs/BINANCE-PROTOCOL.md,
//! "Signing") and RFC 8032's Ed25519 vectors.

use std::fmt;
use std::io::Write as _;

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki;
use ed25519_dalek::pkcs8::spki::der::{self, pem};
use ed25519_dalek::pkcs8::{self, DecodePrivateKey as _};
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use thiserror::Error;

/// The longest signature text: Ed25519's 64 bytes in padded base64 (HMAC's hex is 64).
pub const SIGNATURE_LEN_MAX: usize = 88;

/// A signature as the venue expects its text: lowercase hex for HMAC, standard
/// padded base64 for Ed25519. On the stack, so that signing an order allocates
/// nothing; not secret (it is sent in the clear), so it prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    text: [u8; SIGNATURE_LEN_MAX],
    len: u8,
}

impl Signature {
    /// The text to send as the `signature` parameter.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("hex and base64 are ASCII")
    }

    /// The same text as bytes, for writing into a request buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signature").field(&self.as_str()).finish()
    }
}

/// Why a key could not be loaded. Each names what was expected and never
/// includes the key's bytes (not even the parser's own message, which could
/// quote them), so it is safe to log and to show an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error(
        "HMAC secret key is empty: expected the API key's secret (64 characters from Binance)"
    )]
    EmptySecret,
    #[error("Ed25519 private key has {len} bytes: expected 32 raw bytes (the seed)")]
    RawLength { len: usize },
    #[error("Ed25519 private key is not UTF-8 text: expected a PKCS#8 PEM file (-----BEGIN PRIVATE KEY-----)")]
    NotText,
    #[error("Ed25519 private key is not a PEM block ({reason}): expected -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----")]
    NotPem { reason: &'static str },
    #[error("private key is not an Ed25519 key (its PKCS#8 algorithm is another, e.g. RSA, EC or X25519): Binance Ed25519 API keys use Ed25519")]
    WrongAlgorithm,
    #[error("Ed25519 private key is malformed ({reason}): expected an unencrypted PKCS#8 Ed25519 private key")]
    Malformed { reason: &'static str },
}

/// An HMAC-SHA256 key. Holds the keyed hash state (the key's inner and outer
/// pads already absorbed), not the secret's text: each signature clones that
/// state instead of rehashing the key.
pub struct HmacKey {
    keyed: Hmac<Sha256>,
}

impl HmacKey {
    /// `secret` is the secret key's text as Binance shows it, used as bytes (not
    /// hex-decoded): that is how the documentation's vectors sign. An empty
    /// secret is refused: HMAC would accept it, the venue never would.
    pub fn new(secret: &[u8]) -> Result<HmacKey, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        // HMAC takes a key of any length; the error is unreachable but mapped
        // rather than unwrapped.
        let keyed = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| KeyError::EmptySecret)?;
        Ok(HmacKey { keyed })
    }

    /// The lowercase hex HMAC-SHA256 of `payload`, as REST and the WebSocket
    /// API take it.
    pub fn sign(&self, payload: &[u8]) -> Signature {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        let digest = mac.finalize().into_bytes();
        let mut text = [0u8; SIGNATURE_LEN_MAX];
        for (pair, byte) in text.chunks_exact_mut(2).zip(digest.iter()) {
            pair[0] = HEX_LOWER[usize::from(byte >> 4)];
            pair[1] = HEX_LOWER[usize::from(byte & 0x0f)];
        }
        let len = 2 * digest.len();
        debug_assert_eq!(len, 64);
        Signature {
            text,
            len: len as u8,
        }
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// An Ed25519 signing key, the key type Binance requires for `session.logon`
/// and recommends over HMAC. `ed25519_dalek` zeroes it when dropped.
pub struct Ed25519Key {
    key: ed25519_dalek::SigningKey,
}

impl Ed25519Key {
    /// From the PKCS#8 PEM file Binance's key generator (and `openssl genpkey
    /// -algorithm ed25519`) writes: the form an operator hands the key vault.
    /// Bytes, not `&str`, so that the vault can pass what it decrypted without
    /// copying it into a `String`.
    pub fn from_pkcs8_pem(pem_text: &[u8]) -> Result<Ed25519Key, KeyError> {
        let text = std::str::from_utf8(pem_text).map_err(|_| KeyError::NotText)?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(key_error)?;
        Ok(Ed25519Key { key })
    }

    /// From the 32-byte seed (RFC 8032's "secret key"): for keys stored raw and
    /// for the RFC's test vectors.
    pub fn from_bytes(seed: &[u8]) -> Result<Ed25519Key, KeyError> {
        let key = ed25519_dalek::SigningKey::try_from(seed)
            .map_err(|_| KeyError::RawLength { len: seed.len() })?;
        Ok(Ed25519Key { key })
    }

    /// The public key: what the operator registered with Binance, so that
    /// `keys check` can show which key this is without showing the secret.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The Ed25519 signature of `payload`, in standard padded base64.
    pub fn sign(&self, payload: &[u8]) -> Signature {
        let raw = self.key.sign(payload).to_bytes();
        let mut text = [0u8; SIGNATURE_LEN_MAX];
        let len = base64::engine::general_purpose::STANDARD
            .encode_slice(raw, &mut text)
            .expect("64 bytes encode to exactly 88 base64 characters");
        debug_assert_eq!(len, SIGNATURE_LEN_MAX);
        Signature {
            text,
            len: len as u8,
        }
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Key(<redacted>)")
    }
}

/// One follower account's signing key, whichever kind the follower created, so
/// that a gateway signs without caring which. Not `Clone` (nor are the keys):
/// one copy of a key per account, shared by reference.
pub enum Signer {
    /// The key Binance makes by default; signs per request (hex).
    Hmac(HmacKey),
    /// The key `session.logon` needs; signs per request (base64) unless the
    /// connection is logged on.
    Ed25519(Ed25519Key),
}

impl Signer {
    /// See `HmacKey::new`.
    pub fn hmac(secret: &[u8]) -> Result<Signer, KeyError> {
        HmacKey::new(secret).map(Signer::Hmac)
    }

    /// See `Ed25519Key::from_pkcs8_pem`.
    pub fn ed25519_pem(pem_text: &[u8]) -> Result<Signer, KeyError> {
        Ed25519Key::from_pkcs8_pem(pem_text).map(Signer::Ed25519)
    }

    /// The signature of `payload` in the text form this key's kind uses.
    pub fn sign(&self, payload: &[u8]) -> Signature {
        match self {
            Signer::Hmac(k) => k.sign(payload),
            Signer::Ed25519(k) => k.sign(payload),
        }
    }
}

/// Written by hand, like `Display`: whatever prints a signer (a log line, a
/// panic message, `{:?}` of a struct holding one) learns its kind only.
impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Hmac(_) => f.write_str("Signer::Hmac(<redacted>)"),
            Signer::Ed25519(_) => f.write_str("Signer::Ed25519(<redacted>)"),
        }
    }
}

/// The scheme's name, for logs and `keys list`.
impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Hmac(_) => f.write_str("HMAC-SHA256"),
            Signer::Ed25519(_) => f.write_str("Ed25519"),
        }
    }
}

/// Writes the WebSocket API's signing payload into `out` (cleared first): every
/// parameter but `signature`, sorted by name (byte order, as the venue sorts),
/// as `name=value` joined by `&`. Sorts `params` in place, so that the caller can
/// then send them in the very order that was signed. Values are written as they
/// are, unescaped, as the venue signs them: the caller keeps `&` and `=` out of
/// them (`wsapi` does).
pub fn write_payload<V: fmt::Display>(params: &mut [(&str, V)], out: &mut Vec<u8>) {
    params.sort_unstable_by(|a, b| a.0.cmp(b.0));
    debug_assert!(
        params.windows(2).all(|w| w[0].0 != w[1].0),
        "a parameter is given twice"
    );
    out.clear();
    for (name, value) in params.iter().filter(|(name, _)| *name != "signature") {
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        write_display(out, value);
    }
}

/// Appends `value`'s `Display` text to `out` without an intermediate `String`.
pub(super) fn write_display(out: &mut Vec<u8>, value: impl fmt::Display) {
    write!(out, "{value}").expect("writing to a Vec<u8> cannot fail");
}

/// Lowercase, as the documentation's HMAC signatures are written.
pub(super) const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

const BOUNDARY: &str = "its BEGIN or END line is missing or damaged (a truncated file?)";

/// Maps the PKCS#8 parser's errors onto `KeyError` by kind only: its own
/// messages are not passed on, so nothing from the key can reach a log.
fn key_error(e: pkcs8::Error) -> KeyError {
    match e {
        pkcs8::Error::Asn1(asn1) => match asn1.kind() {
            der::ErrorKind::Pem(p) => match p {
                pem::Error::Label | pem::Error::UnexpectedTypeLabel { .. } => KeyError::NotPem {
                    reason: "its label is not PRIVATE KEY (an encrypted, RSA or EC key?)",
                },
                pem::Error::Base64(_) => KeyError::NotPem {
                    reason: "its body is not valid base64",
                },
                pem::Error::Preamble
                | pem::Error::PreEncapsulationBoundary
                | pem::Error::PostEncapsulationBoundary => KeyError::NotPem { reason: BOUNDARY },
                _ => KeyError::NotPem {
                    reason: "its framing is invalid",
                },
            },
            _ => KeyError::Malformed {
                reason: "its DER structure is invalid or truncated",
            },
        },
        pkcs8::Error::PublicKey(spki::Error::OidUnknown { .. })
        | pkcs8::Error::PublicKey(spki::Error::AlgorithmParametersMissing) => {
            KeyError::WrongAlgorithm
        }
        pkcs8::Error::KeyMalformed => KeyError::Malformed {
            reason:
                "its key bytes are not a 32-byte Ed25519 seed, or its public key does not match",
        },
        pkcs8::Error::ParametersMalformed => KeyError::Malformed {
            reason: "its algorithm parameters are present or invalid",
        },
        _ => KeyError::Malformed {
            reason: "PKCS#8 structure rejected",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // docs/BINANCE-PROTOCOL.md, "Signing": the REST example (GI).
    const REST_SECRET: &str = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
    const REST_PAYLOAD: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";
    const REST_SIGNATURE: &str = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9";
    // The page's parameter table order: signs to `ec11dcc1…` (the doc's trap).
    const REST_TABLE_ORDER: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943";
    const REST_TABLE_ORDER_SIGNATURE: &str =
        "ec11dcc17e67e47f0d3c3f513dfe9062307e37619c5c82ebaa8fe0bdf3d59519";

    // docs/BINANCE-PROTOCOL.md, "Signing": Spot's WebSocket API HMAC example.
    const WS_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const WS_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const WS_PAYLOAD: &str = "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
    const WS_SIGNATURE: &str = "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a";

    // RFC 8032 section 7.1, TEST 1 and TEST 2.
    const RFC1_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC1_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC1_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    const RFC2_SECRET: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const RFC2_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    const RFC2_SIGNATURE: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

    // RFC 8032 TEST 1's secret as PKCS#8 PEM, written by `openssl pkey` (OpenSSL 3.0)
    // from the DER `302e020100300506032b657004220420 || secret`.
    const RFC1_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";
    // `openssl pkeyutl -sign -rawin` with RFC1_PEM over WS_PAYLOAD, base64: a second
    // implementation's Ed25519 signature of a Binance payload.
    const RFC1_WS_PAYLOAD_OPENSSL: &str =
        "BjL7LLyIGJ75fVzLx0zhi4LL5/b/BPg/unL7Qpav0JdUSTn0ihLXON8imGUgCTrcbHDECyGwsL+aZy9+RYobBw==";
    // Throwaway keys of other kinds made by `openssl genpkey` for these tests.
    const X25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VuBCIEIChVTqN/LLz/jb7ST1Vv8JczfjaeCtL6na7yJ0mjp4B3\n\
        -----END PRIVATE KEY-----\n";
    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvd6/+/Pebuo8t2H1\n\
        A38Tfe7/XoBXtibkO4w/GiogUKyhRANCAAQmjMFEmBZ8I7bzOzkLwkP24/Z5n6iC\n\
        +y0Oal6oicuZHqO0WlHQmsPET2prQnDg6GEamUXwQ4s3R4gLkUcBIMst\n\
        -----END PRIVATE KEY-----\n";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hmac_hex(secret: &str, payload: &[u8]) -> String {
        HmacKey::new(secret.as_bytes())
            .unwrap()
            .sign(payload)
            .as_str()
            .to_owned()
    }

    #[test]
    fn rest_hmac_vector_signs_the_exact_string() {
        assert_eq!(
            hmac_hex(REST_SECRET, REST_PAYLOAD.as_bytes()),
            REST_SIGNATURE
        );
    }

    #[test]
    fn rest_hmac_vector_table_order_is_a_different_signature() {
        let sig = hmac_hex(REST_SECRET, REST_TABLE_ORDER.as_bytes());
        assert_ne!(sig, REST_SIGNATURE);
        assert_eq!(sig, REST_TABLE_ORDER_SIGNATURE);
    }

    #[test]
    fn ws_hmac_vector_through_sorted_params() {
        // Deliberately out of order, with a stale signature that must be left out.
        let mut params = [
            ("type", "LIMIT"),
            ("signature", "ffff"),
            ("timestamp", "1645423376532"),
            ("symbol", "BTCUSDT"),
            ("recvWindow", "100"),
            ("quantity", "0.01000000"),
            ("timeInForce", "GTC"),
            ("price", "52000.00"),
            ("side", "SELL"),
            ("newOrderRespType", "ACK"),
            ("apiKey", WS_API_KEY),
        ];
        let mut payload = b"left over from the last request".to_vec();
        write_payload(&mut params, &mut payload);
        assert_eq!(std::str::from_utf8(&payload).unwrap(), WS_PAYLOAD);
        let signer = Signer::hmac(WS_SECRET.as_bytes()).unwrap();
        assert_eq!(signer.sign(&payload).as_str(), WS_SIGNATURE);
        assert_eq!(params[0].0, "apiKey", "params are left in signing order");
    }

    #[test]
    fn payload_formats_integer_values() {
        let mut params = [("timestamp", 1u64), ("recvWindow", 5000)];
        let mut payload = Vec::new();
        write_payload(&mut params, &mut payload);
        assert_eq!(payload, b"recvWindow=5000&timestamp=1");
        let mut none: [(&str, u64); 0] = [];
        write_payload(&mut none, &mut payload);
        assert!(payload.is_empty());
    }

    #[test]
    fn rfc8032_vectors_1_and_2() {
        for (secret, public, message, signature) in [
            (RFC1_SECRET, RFC1_PUBLIC, "", RFC1_SIGNATURE),
            (RFC2_SECRET, RFC2_PUBLIC, "72", RFC2_SIGNATURE),
        ] {
            let key = Ed25519Key::from_bytes(&unhex(secret)).unwrap();
            assert_eq!(hex(&key.public_key()), public);
            let sig = key.sign(&unhex(message));
            let raw = base64::engine::general_purpose::STANDARD
                .decode(sig.as_str())
                .unwrap();
            assert_eq!(hex(&raw), signature);
            assert_eq!(sig.as_str().len(), SIGNATURE_LEN_MAX);
            assert!(sig.as_str().ends_with("=="), "standard, padded base64");
        }
    }

    #[test]
    fn ed25519_pem_loads_and_signs_like_openssl() {
        let signer = Signer::ed25519_pem(RFC1_PEM.as_bytes()).unwrap();
        let Signer::Ed25519(key) = &signer else {
            panic!("an Ed25519 PEM gives an Ed25519 signer");
        };
        assert_eq!(hex(&key.public_key()), RFC1_PUBLIC);
        assert_eq!(
            signer.sign(WS_PAYLOAD.as_bytes()).as_str(),
            RFC1_WS_PAYLOAD_OPENSSL
        );
    }

    #[test]
    fn ed25519_pem_round_trip() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = Ed25519Key::from_bytes(&unhex(RFC2_SECRET)).unwrap();
        let pem_text = key.key.to_pkcs8_pem(pem::LineEnding::LF).unwrap();
        let back = Ed25519Key::from_pkcs8_pem(pem_text.as_bytes()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.sign(b"x"), key.sign(b"x"));
    }

    #[test]
    fn hostile_keys_are_errors() {
        let truncated = &RFC1_PEM[..RFC1_PEM.len() / 2];
        let damaged_body = RFC1_PEM.replace("MC4CAQAw", "MC4C!!Aw");
        let short_der = RFC1_PEM.replace(
            "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g",
            "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v",
        );
        let encrypted = RFC1_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        let boundary = KeyError::NotPem { reason: BOUNDARY };
        let cases: [(&[u8], KeyError); 10] = [
            (b"", boundary),
            (b"garbage, not a key at all", boundary),
            (truncated.as_bytes(), boundary),
            (
                damaged_body.as_bytes(),
                KeyError::NotPem {
                    reason: "its body is not valid base64",
                },
            ),
            (
                encrypted.as_bytes(),
                KeyError::NotPem {
                    reason: "its label is not PRIVATE KEY (an encrypted, RSA or EC key?)",
                },
            ),
            (&[0xff, 0xfe, 0x00], KeyError::NotText),
            (
                short_der.as_bytes(),
                KeyError::Malformed {
                    reason: "its DER structure is invalid or truncated",
                },
            ),
            (X25519_PEM.as_bytes(), KeyError::WrongAlgorithm),
            (P256_PEM.as_bytes(), KeyError::WrongAlgorithm),
            (&unhex(RFC1_SECRET), KeyError::NotText),
        ];
        for (input, expected) in cases {
            let err = Ed25519Key::from_pkcs8_pem(input).unwrap_err();
            assert_eq!(err, expected, "for {:?}", String::from_utf8_lossy(input));
            let text = format!("{err} {err:?}");
            assert!(
                !text.contains("MC4C") && !text.contains("9d61b19d"),
                "{text}"
            );
        }
        for len in [0, 31, 33, 64] {
            assert_eq!(
                Ed25519Key::from_bytes(&vec![7; len]).unwrap_err(),
                KeyError::RawLength { len }
            );
        }
        assert_eq!(Signer::hmac(b"").unwrap_err(), KeyError::EmptySecret);
    }

    #[test]
    fn hostile_payloads_sign() {
        let hmac = Signer::hmac(REST_SECRET.as_bytes()).unwrap();
        let ed = Signer::Ed25519(Ed25519Key::from_bytes(&unhex(RFC1_SECRET)).unwrap());
        let Signer::Ed25519(ed_key) = &ed else {
            unreachable!()
        };
        let public = ed25519_dalek::VerifyingKey::from_bytes(&ed_key.public_key()).unwrap();
        // The HMAC values are `openssl dgst -sha256 -hmac` of the same bytes.
        let mib = vec![b'a'; 1 << 20];
        for (payload, hmac_expected) in [
            (
                &b""[..],
                "21fd819734bf0e5c68740eed892909414d693635c5f7fffab1313925ae13556a",
            ),
            (
                &mib[..],
                "1f8b47066d23f46199dbb02f91a650230977699c1239b0b7480fa2efc42c33dd",
            ),
        ] {
            assert_eq!(hmac.sign(payload).as_str(), hmac_expected);
            let sig = ed.sign(payload);
            let raw: [u8; 64] = base64::engine::general_purpose::STANDARD
                .decode(sig.as_str())
                .unwrap()
                .try_into()
                .unwrap();
            public
                .verify_strict(payload, &ed25519_dalek::Signature::from_bytes(&raw))
                .unwrap();
        }
        // A secret longer than SHA-256's block is hashed first (RFC 2104), not refused.
        let long = Signer::hmac(&[0x5a; 1000]).unwrap();
        assert_eq!(long.sign(b"x").as_str().len(), 64);
    }

    #[test]
    fn printing_a_signer_shows_no_secret() {
        let seed = unhex(RFC1_SECRET);
        let signers = [
            (
                Signer::hmac(WS_SECRET.as_bytes()).unwrap(),
                WS_SECRET.as_bytes().to_vec(),
            ),
            (
                Signer::ed25519_pem(RFC1_PEM.as_bytes()).unwrap(),
                seed.clone(),
            ),
            (
                Signer::Ed25519(Ed25519Key::from_bytes(&seed).unwrap()),
                seed.clone(),
            ),
        ];
        for (signer, secret) in &signers {
            let printed = [
                format!("{signer:?}"),
                format!("{signer:#?}"),
                format!("{signer}"),
                format!("{:?}", Some(signer)),
            ];
            for text in &printed {
                assert!(text.len() < 40, "{text}");
                for needle in [
                    hex(secret),
                    hex(secret).to_uppercase(),
                    String::from_utf8_lossy(secret).into_owned(),
                    format!("{:?}", &secret[..8]),
                    base64::engine::general_purpose::STANDARD.encode(secret),
                ] {
                    assert!(!text.contains(&needle), "{text} contains the secret");
                }
            }
        }
        assert_eq!(format!("{:?}", signers[0].0), "Signer::Hmac(<redacted>)");
        assert_eq!(format!("{:?}", signers[1].0), "Signer::Ed25519(<redacted>)");
        assert_eq!(format!("{}", signers[0].0), "HMAC-SHA256");
        let Signer::Hmac(k) = &signers[0].0 else {
            unreachable!()
        };
        assert_eq!(format!("{k:?}"), "HmacKey(<redacted>)");
    }
}
