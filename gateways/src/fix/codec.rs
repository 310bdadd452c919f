//! The FIX 4.4 tag=value codec: a [`Decoder`] that frames and checks messages in a
//! socket's read buffer, a borrowed [`Message`] with typed accessors, and an
//! [`Encoder`] that appends messages to an egress buffer.
//!
//! Owns the wire syntax only: `8=FIX.4.4` first, `9=` BodyLength second (and it must
//! match), `35=` MsgType third, `10=` CheckSum last (three digits, the byte sum mod 256
//! of everything before it), every field `tag=value<SOH>` with a tag that is a
//! positive integer without leading zeros and a non-empty value. It never knows a
//! message type's required fields, a session's sequence numbers or a dictionary.
//!
//! **Why our own code and not a crate.** We looked at the Rust FIX codecs in
//! December 2026: `fefix` (ferrumfix, latest release 0.7, forked by `hotfix`; its
//! streaming decoder has a `panic!` state, reads BodyLength digits with wrapping
//! arithmetic over any byte, and its decoders are built around a FIX dictionary),
//! `fixer` (a full engine that builds an owned, allocated `Message` per decode),
//! `ironfix-tagvalue` (0.1–0.2, one author, first released this year; it decodes one
//! whole message and leaves stream framing to a tokio codec in another crate) and
//! `fix-codec-rs` (one 0.1 release, 9% documented, a `SmallVec` that spills to the
//! heap past 32 fields). None of them frames a stream over a borrowed buffer, bounds
//! both the message size and the field count, says where an error is and how far to
//! skip, and parses prices into `Decimal` without a float. The syntax is small and
//! fixed: about 780 lines of code here that we can read, fuzz and bound ourselves.
//!
//! **Repeating groups.** The codec knows no dictionary, so it cannot tell a group's
//! repeated fields from a duplicated one. A tag may appear once unless the caller
//! declares it repeatable ([`Decoder::with_repeatable`], e.g. 448/447/452 of the
//! Parties group); every occurrence is kept in wire order, [`Message::fields`] walks
//! them, and the caller reads a group from its NumInGroup field on.
//!
//! **Data fields** (`data` type, e.g. RawData 96, which may hold SOH after its length
//! field) are not supported: a SOH inside a value ends the field, and what follows
//! fails as a malformed field.
//!
//! **Architecture Invariant:** decoding never allocates after [`Decoder::new`], never
//! panics, and never asks for more than [`Limits::message_bytes_max`] bytes: garbage,
//! oversized or malformed input gives a [`FixError`] that consumes at least one byte.

use fillcast_engine::units::Nanos;
use rust_decimal::Decimal;
use std::fmt;
use std::io::Write as _;
use thiserror::Error;

/// The field separator.
pub const SOH: u8 = 0x01;

/// The only BeginString this codec speaks, as it opens every message.
pub const BEGIN_STRING: &[u8] = b"8=FIX.4.4\x01";

/// Tags the codec places itself: BeginString, BodyLength, MsgType, CheckSum.
const TAG_BEGIN_STRING: u32 = 8;
const TAG_BODY_LENGTH: u32 = 9;
const TAG_MSG_TYPE: u32 = 35;
const TAG_CHECKSUM: u32 = 10;

/// `10=NNN<SOH>`.
const TRAILER_BYTES: usize = 7;

/// The shortest body: `35=X<SOH>`.
const BODY_BYTES_MIN: usize = 5;

/// Most digits of a tag: 999,999,999 is far past any FIX tag and cannot overflow.
const TAG_DIGITS_MAX: usize = 9;

/// Tags below this are tracked for duplicates in a bitset; above, by a scan.
const TAG_BITSET_END: u32 = 8192;

/// Bounds of one decoded message, fixed when the [`Decoder`] is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of one message, BeginString to CheckSum included.
    pub message_bytes_max: usize,
    /// Most fields of one message, BeginString, BodyLength and CheckSum included.
    pub fields_max: usize,
}

impl Limits {
    /// The largest `message_bytes_max` accepted (offsets are kept as `u32`).
    pub const MESSAGE_BYTES_MAX_LIMIT: usize = 16 << 20;
    /// The largest `fields_max` accepted.
    pub const FIELDS_MAX_LIMIT: usize = 1 << 16;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_bytes_max: 64 << 10,
            fields_max: 256,
        }
    }
}

/// Why bytes are not a FIX 4.4 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bytes before a message's `8=`.
    Garbage,
    /// `8=` with another version than `FIX.4.4`.
    BeginString,
    /// No `9=` second, or its value is not a plain length.
    BodyLength,
    /// BodyLength says more than the limit allows.
    TooLarge { body_bytes: usize, max: usize },
    /// The byte BodyLength points at is not `10=`.
    BodyLengthMismatch { body_bytes: usize },
    /// `10=` is not three digits (≤ 255) and a SOH.
    CheckSumSyntax,
    /// The declared CheckSum is not the byte sum of the message.
    CheckSum { declared: u8, computed: u8 },
    /// The third field is not `35=`.
    MsgTypeNotThird,
    /// A tag that is empty, not digits, zero, has a leading zero or is too long.
    Tag,
    /// A field without `=` after its tag.
    NoEquals,
    /// A field without a value.
    EmptyValue,
    /// A field runs into the trailer without its SOH.
    Unterminated,
    /// BeginString, BodyLength or CheckSum somewhere else than their place.
    TagOutOfPlace,
    /// A tag seen twice that was not declared repeatable.
    DuplicateTag,
    /// More fields than the limit.
    TooManyFields { max: usize },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Garbage => write!(f, "bytes that do not start a FIX.4.4 message"),
            ErrorKind::BeginString => write!(f, "BeginString is not 8=FIX.4.4"),
            ErrorKind::BodyLength => write!(f, "no valid BodyLength (9=) second"),
            ErrorKind::TooLarge { body_bytes, max } => {
                write!(
                    f,
                    "BodyLength {body_bytes} makes the message exceed {max} bytes"
                )
            }
            ErrorKind::BodyLengthMismatch { body_bytes } => {
                write!(
                    f,
                    "BodyLength {body_bytes} does not end where CheckSum (10=) starts"
                )
            }
            ErrorKind::CheckSumSyntax => write!(f, "CheckSum is not 10=NNN (000 to 255)"),
            ErrorKind::CheckSum { declared, computed } => {
                write!(f, "CheckSum {declared:03} declared, {computed:03} computed")
            }
            ErrorKind::MsgTypeNotThird => write!(f, "MsgType (35=) is not the third field"),
            ErrorKind::Tag => write!(
                f,
                "malformed tag (a positive integer without leading zeros)"
            ),
            ErrorKind::NoEquals => write!(f, "field without '=' after its tag"),
            ErrorKind::EmptyValue => write!(f, "field without a value"),
            ErrorKind::Unterminated => write!(f, "field not ended by SOH before the CheckSum"),
            ErrorKind::TagOutOfPlace => {
                write!(f, "BeginString, BodyLength or CheckSum out of place")
            }
            ErrorKind::DuplicateTag => write!(f, "tag repeated outside a declared group"),
            ErrorKind::TooManyFields { max } => write!(f, "more than {max} fields"),
        }
    }
}

/// What is wrong, where, and how many bytes the caller drops to resynchronise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("FIX: {kind} at byte {offset}{}; skip {skip} bytes", match tag { Some(t) => format!(" (tag {t})"), None => String::new() })]
pub struct FixError {
    pub kind: ErrorKind,
    /// Offset in the buffer given to [`Decoder::next`].
    pub offset: usize,
    /// The tag of the field at fault, when there is one.
    pub tag: Option<u32>,
    /// Bytes to drop from the buffer's front: up to the next `8=FIX.4.4<SOH>` after the
    /// first byte, or all but a trailing partial one. Always at least 1.
    pub skip: usize,
}

/// A field position: tag, value start and end in the message bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    tag: u32,
    start: u32,
    end: u32,
}

/// Frames and checks messages at the front of a read buffer; reusable, and allocation
/// free after [`Decoder::new`].
#[derive(Clone, Debug)]
pub struct Decoder {
    limits: Limits,
    slots: Vec<Slot>,
    /// Tags below `TAG_BITSET_END` seen in the message being decoded.
    seen: Box<[u64; (TAG_BITSET_END / 64) as usize]>,
    /// Sorted tags that may repeat.
    repeatable: Vec<u32>,
}

/// A decoded message: a view over the buffer's bytes and the decoder's field table.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    slots: &'a [Slot],
}

/// A value that does not parse as the type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("not an integer")]
    Integer,
    #[error("integer out of range")]
    Overflow,
    #[error("not a decimal (digits, one optional '.', an optional leading '-')")]
    Decimal,
    #[error("not a UTCTimestamp (YYYYMMDD-HH:MM:SS[.sss[sss[sss]]]) from 1970 to 2554")]
    Timestamp,
    #[error("not a single printable ASCII character")]
    Char,
    #[error("not UTF-8")]
    Utf8,
}

/// A required field that is absent or does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FieldError {
    #[error("tag {0} missing")]
    Missing(u32),
    #[error("tag {tag}: {error}")]
    Invalid { tag: u32, error: ValueError },
}

impl Decoder {
    /// A decoder whose every tag may appear once.
    ///
    /// Panics when `limits` exceed [`Limits::MESSAGE_BYTES_MAX_LIMIT`] or
    /// [`Limits::FIELDS_MAX_LIMIT`], or are too small for any message: a
    /// configuration error at start-up.
    pub fn new(limits: Limits) -> Decoder {
        assert!(
            limits.message_bytes_max <= Limits::MESSAGE_BYTES_MAX_LIMIT,
            "message_bytes_max {} over {}",
            limits.message_bytes_max,
            Limits::MESSAGE_BYTES_MAX_LIMIT
        );
        assert!(
            limits.message_bytes_max >= BEGIN_STRING.len() + 4 + BODY_BYTES_MIN + TRAILER_BYTES,
            "message_bytes_max {} cannot hold a message",
            limits.message_bytes_max
        );
        assert!(
            (4..=Limits::FIELDS_MAX_LIMIT).contains(&limits.fields_max),
            "fields_max {} not in 4..={}",
            limits.fields_max,
            Limits::FIELDS_MAX_LIMIT
        );
        Decoder {
            limits,
            slots: Vec::with_capacity(limits.fields_max),
            seen: Box::new([0; (TAG_BITSET_END / 64) as usize]),
            repeatable: Vec::new(),
        }
    }

    /// The same decoder, letting `tags` repeat (the fields of repeating groups).
    ///
    /// Panics when `tags` holds 8, 9, 10 or 35, which have one place each.
    pub fn with_repeatable(mut self, tags: &[u32]) -> Decoder {
        assert!(
            !tags.iter().any(|t| matches!(
                *t,
                TAG_BEGIN_STRING | TAG_BODY_LENGTH | TAG_CHECKSUM | TAG_MSG_TYPE
            )),
            "8, 9, 10 and 35 cannot repeat"
        );
        self.repeatable = tags.to_vec();
        self.repeatable.sort_unstable();
        self.repeatable.dedup();
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The message at the front of `buf` and the bytes it took, `None` while `buf`
    /// holds only the start of one, or an error.
    ///
    /// `None` is only returned while `buf` starts like a message (BeginString,
    /// BodyLength within the limits, MsgType) and is shorter than the length its
    /// header announces, so a caller that reads until this gives something never
    /// buffers more than `message_bytes_max` bytes. The body's fields are checked
    /// once the whole message is in.
    pub fn next<'s, 'b: 's>(
        &'s mut self,
        buf: &'b [u8],
    ) -> Result<Option<(Message<'s>, usize)>, FixError> {
        let Some(frame) = self.frame(buf)? else {
            return Ok(None);
        };
        self.fields(buf, &frame)?;
        debug_assert!(self.slots.len() >= 4 && self.slots.len() <= self.limits.fields_max);
        let message = Message {
            bytes: &buf[..frame.total],
            slots: &self.slots,
        };
        Ok(Some((message, frame.total)))
    }

    /// Finds the frame at the front of `buf`: header, body and trailer bounds, with
    /// BeginString, BodyLength, the trailer's place and the CheckSum checked.
    fn frame(&self, buf: &[u8]) -> Result<Option<Frame>, FixError> {
        let fail = |kind, offset, tag| Err(error(buf, kind, offset, tag));
        let n = buf.len().min(BEGIN_STRING.len());
        if buf[..n] != BEGIN_STRING[..n] {
            let kind = if n > 2 && buf.starts_with(b"8=") {
                ErrorKind::BeginString
            } else {
                ErrorKind::Garbage
            };
            return fail(kind, 0, None);
        }
        if n < BEGIN_STRING.len() {
            return Ok(None);
        }

        let mut at = BEGIN_STRING.len();
        let n = (buf.len() - at).min(2);
        if buf[at..at + n] != b"9="[..n] {
            return fail(ErrorKind::BodyLength, at, Some(TAG_BODY_LENGTH));
        }
        if n < 2 {
            return Ok(None);
        }
        at += 2;
        let max = self.limits.message_bytes_max;
        let too_large = |body_bytes| ErrorKind::TooLarge { body_bytes, max };
        let mut body_bytes = 0usize;
        let mut digits = 0;
        // A length over the limit fails at the digit that makes it so: a 1 MB message
        // is refused from its header, before its body is read.
        loop {
            let Some(&b) = buf.get(at + digits) else {
                return Ok(None);
            };
            match b {
                SOH if digits > 0 => break,
                b'0'..=b'9' if !(digits == 0 && b == b'0') => {
                    body_bytes = body_bytes * 10 + usize::from(b - b'0');
                    digits += 1;
                    if body_bytes > max {
                        return fail(too_large(body_bytes), at, Some(TAG_BODY_LENGTH));
                    }
                }
                _ => return fail(ErrorKind::BodyLength, at + digits, Some(TAG_BODY_LENGTH)),
            }
        }
        let header = at + digits + 1;
        if header + body_bytes + TRAILER_BYTES > max {
            return fail(too_large(body_bytes), at, Some(TAG_BODY_LENGTH));
        }
        if body_bytes < BODY_BYTES_MIN {
            return fail(ErrorKind::BodyLength, at, Some(TAG_BODY_LENGTH));
        }
        // MsgType can be checked before the whole body is in: a stream that is not FIX
        // after its header fails here instead of being waited on.
        let n = (buf.len() - header).min(3);
        if buf[header..header + n] != b"35="[..n] {
            return fail(ErrorKind::MsgTypeNotThird, header, None);
        }

        let trailer = header + body_bytes;
        let total = trailer + TRAILER_BYTES;
        debug_assert!(total <= self.limits.message_bytes_max);
        if buf.len() < total {
            return Ok(None);
        }
        if &buf[trailer..trailer + 3] != b"10=" {
            let kind = ErrorKind::BodyLengthMismatch { body_bytes };
            return fail(kind, trailer, Some(TAG_BODY_LENGTH));
        }
        let digits = &buf[trailer + 3..trailer + 6];
        if !digits.iter().all(u8::is_ascii_digit) || buf[trailer + 6] != SOH {
            return fail(ErrorKind::CheckSumSyntax, trailer + 3, Some(TAG_CHECKSUM));
        }
        let declared = digits
            .iter()
            .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        let Ok(declared) = u8::try_from(declared) else {
            return fail(ErrorKind::CheckSumSyntax, trailer + 3, Some(TAG_CHECKSUM));
        };
        let computed = checksum(&buf[..trailer]);
        if declared != computed {
            let kind = ErrorKind::CheckSum { declared, computed };
            return fail(kind, trailer + 3, Some(TAG_CHECKSUM));
        }
        Ok(Some(Frame {
            body_length_digits: BEGIN_STRING.len() + 2..header - 1,
            header,
            trailer,
            total,
        }))
    }

    /// Splits the framed message into fields, checking each and filling `slots`.
    fn fields(&mut self, buf: &[u8], frame: &Frame) -> Result<(), FixError> {
        self.clear_seen();
        self.slots.clear();
        let fail = |kind, offset, tag| Err(error(buf, kind, offset, tag));
        let begin_value = 2..BEGIN_STRING.len() - 1;
        self.push(TAG_BEGIN_STRING, begin_value);
        self.push(TAG_BODY_LENGTH, frame.body_length_digits.clone());

        let mut at = frame.header;
        // Each round consumes at least `t=v<SOH>`, so at most body/4 rounds.
        while at < frame.trailer {
            let (tag, value_start) = parse_tag(buf, at, frame.trailer)?;
            let Some(len) = buf[value_start..frame.trailer]
                .iter()
                .position(|&b| b == SOH)
            else {
                return fail(ErrorKind::Unterminated, value_start, Some(tag));
            };
            if len == 0 {
                return fail(ErrorKind::EmptyValue, value_start, Some(tag));
            }
            if at == frame.header && tag != TAG_MSG_TYPE {
                return fail(ErrorKind::MsgTypeNotThird, at, Some(tag));
            }
            if matches!(tag, TAG_BEGIN_STRING | TAG_BODY_LENGTH | TAG_CHECKSUM) {
                return fail(ErrorKind::TagOutOfPlace, at, Some(tag));
            }
            if self.slots.len() + 1 >= self.limits.fields_max {
                let kind = ErrorKind::TooManyFields {
                    max: self.limits.fields_max,
                };
                return fail(kind, at, Some(tag));
            }
            if self.is_duplicate(tag) {
                return fail(ErrorKind::DuplicateTag, at, Some(tag));
            }
            self.push(tag, value_start..value_start + len);
            at = value_start + len + 1;
        }
        debug_assert_eq!(at, frame.trailer);
        self.push(TAG_CHECKSUM, frame.trailer + 3..frame.trailer + 6);
        Ok(())
    }

    fn push(&mut self, tag: u32, value: std::ops::Range<usize>) {
        debug_assert!(self.slots.len() < self.limits.fields_max);
        debug_assert!(value.start < value.end && value.end <= self.limits.message_bytes_max);
        self.slots.push(Slot {
            tag,
            start: value.start as u32,
            end: value.end as u32,
        });
    }

    /// Whether `tag` was seen before in this message and may not repeat; marks it.
    fn is_duplicate(&mut self, tag: u32) -> bool {
        if self.repeatable.binary_search(&tag).is_ok() {
            return false;
        }
        if tag < TAG_BITSET_END {
            let (word, bit) = ((tag / 64) as usize, 1u64 << (tag % 64));
            let dup = self.seen[word] & bit != 0;
            self.seen[word] |= bit;
            dup
        } else {
            self.slots.iter().any(|s| s.tag == tag)
        }
    }

    /// Forgets the tags of the previous message (only the bits it set).
    fn clear_seen(&mut self) {
        for s in &self.slots {
            if s.tag < TAG_BITSET_END {
                self.seen[(s.tag / 64) as usize] = 0;
            }
        }
        debug_assert!(self.seen.iter().all(|&w| w == 0));
    }
}

#[derive(Clone, Debug)]
struct Frame {
    body_length_digits: std::ops::Range<usize>,
    /// First byte after `9=N<SOH>`.
    header: usize,
    /// First byte of `10=`.
    trailer: usize,
    total: usize,
}

/// A tag at `at` and the offset of its value; the tag ends at `=` before `end`.
fn parse_tag(buf: &[u8], at: usize, end: usize) -> Result<(u32, usize), FixError> {
    let mut tag = 0u32;
    let mut i = at;
    loop {
        let b = if i < end { buf[i] } else { SOH };
        match b {
            b'=' if i > at => return Ok((tag, i + 1)),
            b'1'..=b'9' if i - at < TAG_DIGITS_MAX => tag = tag * 10 + u32::from(b - b'0'),
            b'0' if i > at && i - at < TAG_DIGITS_MAX => tag *= 10,
            SOH if i > at => return Err(error(buf, ErrorKind::NoEquals, i, Some(tag))),
            _ => return Err(error(buf, ErrorKind::Tag, at, None)),
        }
        i += 1;
    }
}

fn error(buf: &[u8], kind: ErrorKind, offset: usize, tag: Option<u32>) -> FixError {
    let skip = resync(buf);
    debug_assert!(skip >= 1 && skip <= buf.len());
    FixError {
        kind,
        offset,
        tag,
        skip,
    }
}

/// Bytes before the next possible message start after the first byte: the next
/// `8=FIX.4.4<SOH>`, or a trailing prefix of it that more bytes may complete.
fn resync(buf: &[u8]) -> usize {
    let mut i = 1;
    while i < buf.len() {
        let n = (buf.len() - i).min(BEGIN_STRING.len());
        if buf[i..i + n] == BEGIN_STRING[..n] {
            return i;
        }
        i += 1;
    }
    buf.len().max(1)
}

fn digit_count(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The FIX CheckSum: the byte sum mod 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

impl<'a> Message<'a> {
    /// The whole message, BeginString to CheckSum.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// MsgType (35), never empty.
    pub fn msg_type(&self) -> &'a [u8] {
        // The decoder put 8, 9 then 35.
        let s = self.slots[2];
        debug_assert_eq!(s.tag, TAG_MSG_TYPE);
        &self.bytes[s.start as usize..s.end as usize]
    }

    /// Every field in wire order, BeginString to CheckSum, repeats included.
    pub fn fields(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.slots
            .iter()
            .map(move |s| (s.tag, &bytes[s.start as usize..s.end as usize]))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never true: a message has at least 8, 9, 35 and 10.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The first value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.fields().find(|&(t, _)| t == tag).map(|(_, v)| v)
    }

    /// Every value of `tag`, in wire order (more than one only for repeatable tags).
    pub fn get_all(&self, tag: u32) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields()
            .filter(move |&(t, _)| t == tag)
            .map(|(_, v)| v)
    }

    /// The first value of `tag` as text: `Ok(None)` when absent.
    pub fn get_str(&self, tag: u32) -> Result<Option<&'a str>, FieldError> {
        self.get(tag).map(|v| typed(tag, parse_str(v))).transpose()
    }

    fn required(&self, tag: u32) -> Result<&'a [u8], FieldError> {
        self.get(tag).ok_or(FieldError::Missing(tag))
    }

    /// A required text field.
    pub fn str(&self, tag: u32) -> Result<&'a str, FieldError> {
        typed(tag, parse_str(self.required(tag)?))
    }

    /// A required unsigned integer (SeqNum, Length, NumInGroup...).
    pub fn u64(&self, tag: u32) -> Result<u64, FieldError> {
        typed(tag, parse_u64(self.required(tag)?))
    }

    /// A required signed integer.
    pub fn i64(&self, tag: u32) -> Result<i64, FieldError> {
        typed(tag, parse_i64(self.required(tag)?))
    }

    /// A required Price, Qty, Amt or float field, exact.
    pub fn decimal(&self, tag: u32) -> Result<Decimal, FieldError> {
        typed(tag, parse_decimal(self.required(tag)?))
    }

    /// A required UTCTimestamp, in ns since the epoch.
    pub fn timestamp(&self, tag: u32) -> Result<Nanos, FieldError> {
        typed(tag, parse_timestamp(self.required(tag)?))
    }

    /// A required char field (Side, OrdType, ExecType...): the byte, for the caller
    /// to map onto its enum.
    pub fn char(&self, tag: u32) -> Result<u8, FieldError> {
        typed(tag, parse_char(self.required(tag)?))
    }
}

fn typed<T>(tag: u32, r: Result<T, ValueError>) -> Result<T, FieldError> {
    r.map_err(|error| FieldError::Invalid { tag, error })
}

/// UTF-8 text.
pub fn parse_str(v: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(v).map_err(|_| ValueError::Utf8)
}

/// Digits only (leading zeros allowed, as FIX says), no sign.
pub fn parse_u64(v: &[u8]) -> Result<u64, ValueError> {
    if v.is_empty() {
        return Err(ValueError::Integer);
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(ValueError::Integer);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ValueError::Overflow)
    })
}

/// An optional `-` then digits; `i64::MIN` included.
pub fn parse_i64(v: &[u8]) -> Result<i64, ValueError> {
    let (negative, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let magnitude = parse_u64(digits)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or(ValueError::Overflow)
    } else {
        i64::try_from(magnitude).map_err(|_| ValueError::Overflow)
    }
}

/// FIX float syntax, `-?(d+(.d*)?|.d+)`, into an exact `Decimal` (at most 28
/// fractional digits and a mantissa under 2^96, else `Overflow`). No exponent, no `+`.
pub fn parse_decimal(v: &[u8]) -> Result<Decimal, ValueError> {
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    let mut dots = 0;
    let mut any_digit = false;
    for &b in digits {
        match b {
            b'.' => dots += 1,
            b'0'..=b'9' => any_digit = true,
            _ => return Err(ValueError::Decimal),
        }
    }
    if !any_digit || dots > 1 {
        return Err(ValueError::Decimal);
    }
    // Only ASCII digits, '-' and '.' reach here.
    let text = std::str::from_utf8(v).map_err(|_| ValueError::Decimal)?;
    Decimal::from_str_exact(text).map_err(|_| ValueError::Overflow)
}

/// `YYYYMMDD-HH:MM:SS` with none, 3, 6 or 9 fractional digits, UTC, into ns since the
/// epoch. Second 60 (a leap second) is accepted and lands on the next minute's first.
pub fn parse_timestamp(v: &[u8]) -> Result<Nanos, ValueError> {
    const E: ValueError = ValueError::Timestamp;
    let (frac_ns_per_unit, frac) = match v.len() {
        17 => (0, &v[17..]),
        21 => (1_000_000, &v[18..]),
        24 => (1_000, &v[18..]),
        27 => (1, &v[18..]),
        _ => return Err(E),
    };
    if v[8] != b'-' || v[11] != b':' || v[14] != b':' || (!frac.is_empty() && v[17] != b'.') {
        return Err(E);
    }
    let num = |r: std::ops::Range<usize>| parse_u64(&v[r]).map_err(|_| E);
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(12..14)?, num(15..17)?);
    let frac = if frac.is_empty() {
        0
    } else {
        parse_u64(frac).map_err(|_| E)?
    };
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(E);
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(frac * frac_ns_per_unit))
        .map(Nanos)
        .ok_or(E)
}

/// One printable ASCII byte.
pub fn parse_char(v: &[u8]) -> Result<u8, ValueError> {
    match v {
        [b] if b.is_ascii_graphic() || *b == b' ' => Ok(*b),
        _ => Err(ValueError::Char),
    }
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    debug_assert!(year >= 1970 && (1..=12).contains(&month) && (1..=31).contains(&day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// How many fractional digits a written UTCTimestamp carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePrecision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// Why a message cannot be written. Nothing of it is left in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("tag {0}: a value must not be empty")]
    EmptyValue(u32),
    #[error("tag {0}: a value must not contain SOH")]
    Soh(u32),
    #[error("tag {0} is not a tag the caller may write (0, 8, 9, 10 and 35 are the codec's)")]
    Tag(u32),
    #[error("the message would be {bytes} bytes, over {max}")]
    TooLarge { bytes: usize, max: usize },
}

/// The standard header fields every message carries, written in this order after
/// BeginString and BodyLength: 35, 49, 56, 34, 52.
#[derive(Clone, Copy, Debug)]
pub struct Header<'h> {
    pub msg_type: &'h [u8],
    pub sender_comp_id: &'h [u8],
    pub target_comp_id: &'h [u8],
    pub msg_seq_num: u64,
    pub sending_time: Nanos,
}

/// Writes messages at the end of an egress buffer; it holds only its limit, so the
/// buffer's capacity is the only memory, reused once warm.
#[derive(Clone, Copy, Debug)]
pub struct Encoder {
    message_bytes_max: usize,
}

/// One message being written at the end of a buffer. Dropped before
/// [`Writer::finish`], it removes what it wrote.
#[derive(Debug)]
pub struct Writer<'o> {
    out: &'o mut Vec<u8>,
    /// Where the message starts in `out`.
    start: usize,
    /// Where the body (35=...) starts in `out`, after the room left for 8 and 9.
    body: usize,
    message_bytes_max: usize,
    finished: bool,
}

impl Encoder {
    pub fn new(limits: Limits) -> Encoder {
        assert!(limits.message_bytes_max <= Limits::MESSAGE_BYTES_MAX_LIMIT);
        Encoder {
            message_bytes_max: limits.message_bytes_max,
        }
    }

    /// Starts a message at the end of `out` with the standard header; SendingTime in
    /// milliseconds, the precision FIX 4.4 defines.
    pub fn begin<'o>(
        &self,
        out: &'o mut Vec<u8>,
        header: &Header<'_>,
    ) -> Result<Writer<'o>, EncodeError> {
        let mut w = self.begin_msg_type(out, header.msg_type)?;
        w.bytes(49, header.sender_comp_id)?;
        w.bytes(56, header.target_comp_id)?;
        w.u64(34, header.msg_seq_num)?;
        w.timestamp(52, header.sending_time, TimePrecision::Millis)?;
        Ok(w)
    }

    /// Starts a message with MsgType alone; the caller writes the rest of the header
    /// in the order it needs (a resend's PossDupFlag and OrigSendingTime, a copy of a
    /// decoded message).
    pub fn begin_msg_type<'o>(
        &self,
        out: &'o mut Vec<u8>,
        msg_type: &[u8],
    ) -> Result<Writer<'o>, EncodeError> {
        let start = out.len();
        // Room for `8=FIX.4.4<SOH>9=<digits><SOH>`; `finish` writes it right-aligned
        // and moves the body down over the gap.
        let room = BEGIN_STRING.len() + 3 + digit_count(self.message_bytes_max);
        out.resize(start + room, 0);
        let mut w = Writer {
            out,
            start,
            body: start + room,
            message_bytes_max: self.message_bytes_max,
            finished: false,
        };
        w.field(TAG_MSG_TYPE, msg_type)?;
        Ok(w)
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(Limits::default())
    }
}

impl Writer<'_> {
    /// A text or raw field; refuses an empty value and any SOH.
    pub fn bytes(&mut self, tag: u32, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if matches!(
            tag,
            0 | TAG_BEGIN_STRING | TAG_BODY_LENGTH | TAG_CHECKSUM | TAG_MSG_TYPE
        ) {
            return Err(EncodeError::Tag(tag));
        }
        self.field(tag, value)
    }

    pub fn str(&mut self, tag: u32, value: &str) -> Result<&mut Self, EncodeError> {
        self.bytes(tag, value.as_bytes())
    }

    pub fn u64(&mut self, tag: u32, value: u64) -> Result<&mut Self, EncodeError> {
        self.formatted(tag, format_args!("{value}"))
    }

    pub fn i64(&mut self, tag: u32, value: i64) -> Result<&mut Self, EncodeError> {
        self.formatted(tag, format_args!("{value}"))
    }

    /// A decimal as written by `Decimal`'s `Display`: no exponent, its own scale.
    pub fn decimal(&mut self, tag: u32, value: &Decimal) -> Result<&mut Self, EncodeError> {
        self.formatted(tag, format_args!("{value}"))
    }

    pub fn char(&mut self, tag: u32, value: u8) -> Result<&mut Self, EncodeError> {
        self.bytes(tag, &[value])
    }

    /// A UTCTimestamp; digits beyond `precision` are cut, not rounded.
    pub fn timestamp(
        &mut self,
        tag: u32,
        at: Nanos,
        precision: TimePrecision,
    ) -> Result<&mut Self, EncodeError> {
        let seconds = at.0 / 1_000_000_000;
        let ns = at.0 % 1_000_000_000;
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let s = seconds % 86_400;
        let (hour, minute, second) = (s / 3_600, s % 3_600 / 60, s % 60);
        let date = format_args!("{year:04}{month:02}{day:02}-{hour:02}:{minute:02}:{second:02}");
        match precision {
            TimePrecision::Seconds => self.formatted(tag, format_args!("{date}")),
            TimePrecision::Millis => {
                self.formatted(tag, format_args!("{date}.{:03}", ns / 1_000_000))
            }
            TimePrecision::Micros => self.formatted(tag, format_args!("{date}.{:06}", ns / 1_000)),
            TimePrecision::Nanos => self.formatted(tag, format_args!("{date}.{ns:09}")),
        }
    }

    /// Computes BodyLength and CheckSum, and gives the message's range in the buffer.
    pub fn finish(mut self) -> std::ops::Range<usize> {
        let body_bytes = self.out.len() - self.body;
        let mut head = [0u8; 32];
        let mut cursor = &mut head[..];
        // 32 bytes hold `8=FIX.4.4<SOH>9=` and any usize.
        let _ = write!(cursor, "8=FIX.4.4\x019={body_bytes}\x01");
        let head_len = 32 - cursor.len();
        let total = head_len + body_bytes + TRAILER_BYTES;
        // `check_size` counted the room left for the head, at least `head_len`.
        debug_assert!(total <= self.message_bytes_max);
        let gap = self.body - self.start - head_len;
        debug_assert!(self.body - self.start >= head_len);
        self.out.copy_within(self.body.., self.body - gap);
        self.out.truncate(self.out.len() - gap);
        self.out[self.start..self.start + head_len].copy_from_slice(&head[..head_len]);
        let sum = checksum(&self.out[self.start..]);
        let _ = write!(self.out, "10={sum:03}\x01");
        debug_assert_eq!(self.out.len() - self.start, total);
        self.finished = true;
        self.start..self.out.len()
    }

    fn formatted(&mut self, tag: u32, value: fmt::Arguments<'_>) -> Result<&mut Self, EncodeError> {
        let mark = self.out.len();
        // Writing into a Vec cannot fail; formatted numbers and dates hold no SOH.
        let _ = write!(self.out, "{tag}={value}\x01");
        debug_assert!(!self.out[mark..self.out.len() - 1].contains(&SOH));
        self.check_size(mark)?;
        Ok(self)
    }

    fn field(&mut self, tag: u32, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.is_empty() {
            return Err(EncodeError::EmptyValue(tag));
        }
        if value.contains(&SOH) {
            return Err(EncodeError::Soh(tag));
        }
        let mark = self.out.len();
        let bytes = mark - self.start + digit_count(tag as usize) + value.len() + 2;
        if bytes + TRAILER_BYTES > self.message_bytes_max {
            return Err(EncodeError::TooLarge {
                bytes: bytes + TRAILER_BYTES,
                max: self.message_bytes_max,
            });
        }
        let _ = write!(self.out, "{tag}=");
        self.out.extend_from_slice(value);
        self.out.push(SOH);
        self.check_size(mark)?;
        Ok(self)
    }

    /// Undoes the field written from `mark` if the message can no longer fit, so a
    /// hostile value never grows the buffer past one message's limit.
    fn check_size(&mut self, mark: usize) -> Result<(), EncodeError> {
        let bytes = self.out.len() - self.start + TRAILER_BYTES;
        if bytes > self.message_bytes_max {
            self.out.truncate(mark);
            return Err(EncodeError::TooLarge {
                bytes,
                max: self.message_bytes_max,
            });
        }
        Ok(())
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}
