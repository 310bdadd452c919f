//! The FIX 4.4 codec (`fillcast_gateways::fix::codec`): real session and application
//! messages decoded and written back byte for byte, every prefix of them waited on,
//! hostile and oversized input refused with the place and the bytes to skip, typed
//! values parsed exactly, and the encoder refusing what it must never write.

use fillcast_engine::units::Nanos;
use fillcast_gateways::fix::codec::{
    checksum, parse_char, parse_decimal, parse_i64, parse_timestamp, parse_u64,
};
use fillcast_gateways::fix::{
    Decoder, EncodeError, Encoder, ErrorKind, FieldError, FixError, Header, Limits, Message,
    TimePrecision, ValueError,
};
use fillcast_gateways::fuzzing;
use proptest::prelude::*;
use rust_decimal_macros::dec;

const HDR: &str = "49=FILLCAST|56=VENUE|34=7|52=20261206-22:00:00.000|";

/// `8=FIX.4.4`, BodyLength and CheckSum around `body` (`|` for SOH), computed here
/// independently of the encoder.
fn frame(body: &str) -> Vec<u8> {
    let body = body.replace('|', "\x01");
    let mut m = format!("8=FIX.4.4\x019={}\x01{body}", body.len()).into_bytes();
    let sum = m.iter().fold(0u32, |s, &b| s + u32::from(b)) % 256;
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    m
}

/// `text` with `|` for SOH and a correct CheckSum appended, whatever BodyLength says.
fn with_checksum(text: &str) -> Vec<u8> {
    let mut m = text.replace('|', "\x01").into_bytes();
    let sum = checksum(&m);
    m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    m
}

/// `text` with `|` for SOH, nothing computed.
fn raw(text: &str) -> Vec<u8> {
    text.replace('|', "\x01").into_bytes()
}

fn decoder() -> Decoder {
    Decoder::new(Limits::default()).with_repeatable(&[447, 448, 452])
}

/// One real message of each kind the sessions exchange.
fn samples() -> Vec<(&'static str, String)> {
    let s = |t: &'static str, rest: &str| (t, format!("35={t}|{HDR}{rest}"));
    vec![
        s("A", "98=0|108=30|141=Y|"),
        s("0", ""),
        s("1", "112=TEST-1|"),
        s("2", "7=5|16=0|"),
        s("4", "43=Y|122=20261206-21:59:59.000|123=Y|36=12|"),
        s(
            "3",
            "45=7|371=44|372=D|373=5|58=Value is incorrect (out of range) for this tag|",
        ),
        s(
            "D",
            "11=F1-000001|1=ACC1|55=BTCUSDT|54=1|38=0.500|40=2|44=65000.1|59=3|18=E|\
             60=20261206-22:00:00.123456|",
        ),
        s(
            "8",
            "37=O1|11=F1-000001|17=E1|150=F|39=1|1=L1ACC|55=BTCUSDT|54=1|38=1.0|32=0.5|\
             31=65000.1|151=0.5|14=0.5|6=65000.1|60=20261206-22:00:00.123456789|\
             453=2|448=L1|447=D|452=3|448=DESK|447=D|452=1|",
        ),
        s(
            "F",
            "41=F1-000001|11=F1-000002|55=BTCUSDT|54=1|38=0.5|60=20261206-22:00:01.000|",
        ),
        s("H", "37=O1|11=F1-000001|55=BTCUSDT|54=1|"),
        s("5", "58=bye = done|"),
    ]
}

/// Decodes `bytes` whole, and checks the message writes back to the same bytes.
fn decode_whole(d: &mut Decoder, bytes: &[u8]) -> usize {
    let (m, used) = d.next(bytes).expect("valid").expect("whole");
    assert_eq!(used, bytes.len());
    assert_eq!(m.as_bytes(), bytes);
    assert_eq!(write_back(&m), bytes);
    m.len()
}

fn write_back(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Encoder::default()
        .begin_msg_type(&mut out, m.msg_type())
        .unwrap();
    for (tag, value) in m.fields().skip(3).take(m.len() - 4) {
        w.bytes(tag, value).unwrap();
    }
    let range = w.finish();
    out[range].to_vec()
}

fn error_of(d: &mut Decoder, bytes: &[u8]) -> FixError {
    match d.next(bytes) {
        Err(e) => e,
        Ok(r) => panic!(
            "{:?} decoded: {:?}",
            String::from_utf8_lossy(bytes),
            r.map(|(m, n)| (m.len(), n))
        ),
    }
}

#[test]
fn real_messages_decode_and_write_back_byte_for_byte() {
    let mut d = decoder();
    for (msg_type, body) in samples() {
        let bytes = frame(&body);
        let fields = decode_whole(&mut d, &bytes);
        let (m, _) = d.next(&bytes).unwrap().unwrap();
        assert_eq!(m.msg_type(), msg_type.as_bytes());
        assert_eq!(fields, body.matches('|').count() + 3, "{msg_type}");
        assert_eq!(m.str(49), Ok("FILLCAST"));
        assert_eq!(m.u64(34), Ok(7));
        assert_eq!(m.get(8), Some(&b"FIX.4.4"[..]));
    }
}

#[test]
fn an_execution_report_reads_as_typed_values() {
    let mut d = decoder();
    let bytes = frame(&samples()[7].1);
    let (m, _) = d.next(&bytes).unwrap().unwrap();
    assert_eq!(m.msg_type(), b"8");
    assert_eq!(m.char(150), Ok(b'F'));
    assert_eq!(m.decimal(31), Ok(dec!(65000.1)));
    assert_eq!(m.decimal(32), Ok(dec!(0.5)));
    assert_eq!(m.decimal(38), Ok(dec!(1.0)));
    assert_eq!(m.str(17), Ok("E1"));
    assert_eq!(
        m.timestamp(60),
        Ok(Nanos(1_796_594_400_000_000_000 + 123_456_789))
    );
    assert_eq!(m.timestamp(52), Ok(Nanos(1_796_594_400_000_000_000)));
    assert_eq!(m.u64(453), Ok(2));
    let parties: Vec<_> = m.get_all(448).collect();
    assert_eq!(parties, [&b"L1"[..], &b"DESK"[..]]);
    // A group read from its NumInGroup on, in wire order.
    let group: Vec<(u32, &[u8])> = m
        .fields()
        .skip_while(|&(t, _)| t != 453)
        .skip(1)
        .take_while(|&(t, _)| matches!(t, 448 | 447 | 452))
        .collect();
    assert_eq!(group.len(), 6);
    assert_eq!(group[3], (448, &b"DESK"[..]));
    assert_eq!(m.get_str(58), Ok(None));
    assert_eq!(m.get_str(55), Ok(Some("BTCUSDT")));
    assert_eq!(m.u64(58), Err(FieldError::Missing(58)));
    assert_eq!(
        m.u64(55),
        Err(FieldError::Invalid {
            tag: 55,
            error: ValueError::Integer
        })
    );
    assert_eq!(
        m.char(55),
        Err(FieldError::Invalid {
            tag: 55,
            error: ValueError::Char
        })
    );
}

#[test]
fn the_published_new_order_single_sample_has_a_wrong_checksum() {
    // A copy of the shared venue fixture (a venue's published sample, values invented).
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fix44_new_order_single_sample.fix"
    ))
    .expect("fixture");
    let mut d = decoder();
    let e = error_of(&mut d, &sample);
    assert_eq!(
        e.kind,
        ErrorKind::CheckSum {
            declared: 16,
            computed: 48
        }
    );
    assert_eq!(
        (e.offset, e.tag, e.skip),
        (sample.len() - 4, Some(10), sample.len())
    );
    // Its BodyLength is right: with the CheckSum it should have, it decodes.
    let mut fixed = sample[..sample.len() - 7].to_vec();
    fixed.extend_from_slice(b"10=048\x01");
    decode_whole(&mut d, &fixed);
    let (m, _) = d.next(&fixed).unwrap().unwrap();
    assert_eq!(m.msg_type(), b"D");
    assert_eq!(m.str(55), Ok("LTCBNB"));
    assert_eq!(m.decimal(44), Ok(dec!(10)));
    assert_eq!(m.timestamp(52), Ok(Nanos(1_718_096_506_228_000_000)));
}

#[test]
fn the_encoder_writes_the_header_and_typed_values_exactly() {
    let mut out = b"previous bytes".to_vec();
    let header = Header {
        msg_type: b"D",
        sender_comp_id: b"FILLCAST",
        target_comp_id: b"VENUE",
        msg_seq_num: 7,
        sending_time: Nanos(1_796_594_400_000_999_999),
    };
    let mut w = Encoder::default().begin(&mut out, &header).unwrap();
    w.str(11, "F1-000001").unwrap();
    w.str(55, "BTCUSDT").unwrap();
    w.char(54, b'1').unwrap();
    w.decimal(38, &dec!(0.500)).unwrap();
    w.decimal(44, &dec!(-65000.1)).unwrap();
    w.i64(99, -3).unwrap();
    w.u64(34_000, u64::MAX).unwrap();
    w.timestamp(60, Nanos(1_709_251_199_123_456_789), TimePrecision::Micros)
        .unwrap();
    w.timestamp(61, Nanos(951_868_800_000_000_001), TimePrecision::Nanos)
        .unwrap();
    w.timestamp(62, Nanos(0), TimePrecision::Seconds).unwrap();
    let range = w.finish();
    let expected = frame(
        "35=D|49=FILLCAST|56=VENUE|34=7|52=20261206-22:00:00.000|11=F1-000001|55=BTCUSDT|\
         54=1|38=0.500|44=-65000.1|99=-3|34000=18446744073709551615|\
         60=20240229-23:59:59.123456|61=20000301-00:00:00.000000001|62=19700101-00:00:00|",
    );
    assert_eq!(&out[..14], b"previous bytes");
    assert_eq!(range, 14..out.len());
    assert_eq!(
        String::from_utf8_lossy(&out[range]),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn the_encoder_refuses_what_it_must_never_write_and_leaves_no_trace() {
    let enc = Encoder::default();
    let mut out = b"kept".to_vec();
    {
        let mut w = enc.begin_msg_type(&mut out, b"D").unwrap();
        assert_eq!(w.str(58, "a\x01b").unwrap_err(), EncodeError::Soh(58));
        assert_eq!(w.bytes(58, b"").unwrap_err(), EncodeError::EmptyValue(58));
        for tag in [0, 8, 9, 10, 35] {
            assert_eq!(w.bytes(tag, b"x").unwrap_err(), EncodeError::Tag(tag));
        }
        assert!(matches!(
            w.bytes(58, &vec![b'x'; 70_000]),
            Err(EncodeError::TooLarge { max: 65_536, .. })
        ));
        w.str(58, "fine").unwrap();
        // Dropped unfinished: the partial message goes.
    }
    assert_eq!(out, b"kept");
    assert_eq!(
        enc.begin_msg_type(&mut out, b"\x01").unwrap_err(),
        EncodeError::Soh(35)
    );
    assert_eq!(out, b"kept");
    let header = Header {
        msg_type: b"0",
        sender_comp_id: b"",
        target_comp_id: b"VENUE",
        msg_seq_num: 1,
        sending_time: Nanos(0),
    };
    assert_eq!(
        enc.begin(&mut out, &header).unwrap_err(),
        EncodeError::EmptyValue(49)
    );
    assert_eq!(out, b"kept");

    // A message filling the limit exactly is written; one byte more is not.
    let small = Encoder::new(Limits {
        message_bytes_max: 64,
        fields_max: 16,
    });
    let mut out = Vec::new();
    let mut w = small.begin_msg_type(&mut out, b"0").unwrap();
    // 8=FIX.4.4|9=NN|35=0|58=...|10=NNN| : 10 + 5 + 5 + 3 + v + 1 + 7 = 64.
    let v = 64 - 31;
    assert!(matches!(
        w.bytes(58, &vec![b'y'; v + 1]),
        Err(EncodeError::TooLarge { .. })
    ));
    w.bytes(58, &vec![b'y'; v]).unwrap();
    let range = w.finish();
    assert_eq!(range.len(), 64);
    let mut d = Decoder::new(Limits {
        message_bytes_max: 64,
        fields_max: 16,
    });
    decode_whole(&mut d, &out);
}

#[test]
fn the_encoder_reuses_its_buffer_once_warm() {
    let enc = Encoder::default();
    let mut out = Vec::with_capacity(4096);
    let write = |out: &mut Vec<u8>, seq| {
        let header = Header {
            msg_type: b"D",
            sender_comp_id: b"FILLCAST",
            target_comp_id: b"VENUE",
            msg_seq_num: seq,
            sending_time: Nanos(1_796_594_400_000_000_000),
        };
        let mut w = enc.begin(out, &header).unwrap();
        w.decimal(44, &dec!(65000.1)).unwrap();
        w.finish()
    };
    // Several messages in one egress chunk, each decoding on its own.
    let a = write(&mut out, 1);
    let b = write(&mut out, 2);
    assert_eq!(a.end, b.start);
    let mut d = decoder();
    let (m, used) = d.next(&out).unwrap().unwrap();
    assert_eq!((m.u64(34), used), (Ok(1), a.len()));
    let (m, _) = d.next(&out[used..]).unwrap().unwrap();
    assert_eq!(m.u64(34), Ok(2));
    let ptr = out.as_ptr();
    for seq in 0..1000 {
        out.clear();
        write(&mut out, seq);
    }
    assert_eq!(out.as_ptr(), ptr, "the buffer was reallocated");
}

#[test]
fn every_prefix_of_a_message_waits_and_the_whole_decodes() {
    let mut d = decoder();
    for (_, body) in samples() {
        let bytes = frame(&body);
        for cut in 0..bytes.len() {
            assert!(
                matches!(d.next(&bytes[..cut]), Ok(None)),
                "prefix of {cut} bytes of {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        decode_whole(&mut d, &bytes);
    }
}

#[test]
fn a_stream_read_in_small_pieces_gives_every_message_in_order() {
    let all: Vec<Vec<u8>> = samples().iter().map(|(_, b)| frame(b)).collect();
    let stream = all.concat();
    for piece in [1, 2, 7, 13, 100, 4096] {
        let mut d = decoder();
        let mut socket = &stream[..];
        let mut read_buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        while !socket.is_empty() || !read_buf.is_empty() {
            let n = piece.min(socket.len());
            read_buf.extend_from_slice(&socket[..n]);
            socket = &socket[n..];
            loop {
                match d.next(&read_buf) {
                    Ok(Some((m, used))) => {
                        got.push(m.as_bytes().to_vec());
                        read_buf.drain(..used);
                    }
                    Ok(None) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            if socket.is_empty() {
                assert!(read_buf.is_empty());
                break;
            }
        }
        assert_eq!(got, all, "pieces of {piece}");
    }
}

#[test]
fn garbage_around_messages_is_skipped_to_the_next_begin_string() {
    let a = frame(&samples()[1].1);
    let b = frame(&samples()[2].1);
    let stream = [&b"hello"[..], &a, b"\x01\x01junk 8=FIX", &b, b"8=FIX.4"].concat();
    let mut d = decoder();
    let mut buf = &stream[..];
    let e = error_of(&mut d, buf);
    assert_eq!((e.kind, e.offset, e.skip), (ErrorKind::Garbage, 0, 5));
    buf = &buf[e.skip..];
    let (_, used) = d.next(buf).unwrap().unwrap();
    assert_eq!(used, a.len());
    buf = &buf[used..];
    // "\x01\x01junk 8=FIX" then a message: the first byte of "8=FIX" could not start
    // the FIX.4.4 BeginString, so everything up to the message goes in one skip.
    let e = error_of(&mut d, buf);
    assert_eq!((e.kind, e.skip), (ErrorKind::Garbage, 12));
    buf = &buf[e.skip..];
    let (_, used) = d.next(buf).unwrap().unwrap();
    assert_eq!(used, b.len());
    buf = &buf[used..];
    // A trailing start of a BeginString waits for more.
    assert!(matches!(d.next(buf), Ok(None)));

    // Garbage with a partial BeginString at its end keeps that part.
    let e = error_of(&mut d, b"xyz8=FI");
    assert_eq!(e.skip, 3);
    // A megabyte of garbage is refused at once, in one skip.
    let junk = vec![b'x'; 1 << 20];
    let e = error_of(&mut d, &junk);
    assert_eq!((e.kind, e.skip), (ErrorKind::Garbage, junk.len()));
}

#[test]
fn oversized_messages_are_refused_from_their_header() {
    let mut d = decoder();
    // A 1 MB message: refused once its BodyLength shows it, before its body is read.
    let body = format!("35=D|{HDR}58={}|", "x".repeat(1 << 20));
    let huge = frame(&body);
    let e = error_of(&mut d, &huge[..21]);
    assert!(
        matches!(e.kind, ErrorKind::TooLarge { max: 65_536, .. }),
        "{e}"
    );
    assert_eq!((e.offset, e.tag), (12, Some(9)));
    let e = error_of(&mut d, &huge);
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("65536"), "{e}");

    // Exactly the limit decodes; one byte more is refused.
    let limits = Limits {
        message_bytes_max: 100,
        fields_max: 8,
    };
    let mut d = Decoder::new(limits);
    let fits = |v| frame(&format!("35=0|58={}|", "y".repeat(v)));
    let v = (0..100).rfind(|&v| fits(v).len() <= 100).unwrap();
    assert_eq!(fits(v).len(), 100);
    decode_whole(&mut d, &fits(v));
    let e = error_of(&mut d, &fits(v + 1));
    assert_eq!(
        e.kind,
        ErrorKind::TooLarge {
            body_bytes: v + 1 + 9,
            max: 100
        }
    );
    // Too many fields.
    let many = frame(&format!(
        "35=0|{}",
        (100..110).map(|t| format!("{t}=v|")).collect::<String>()
    ));
    let mut d = Decoder::new(Limits {
        message_bytes_max: 4096,
        fields_max: 8,
    });
    let e = error_of(&mut d, &many);
    assert_eq!(e.kind, ErrorKind::TooManyFields { max: 8 });
    assert_eq!(e.tag, Some(104));
}

/// A hostile message, the error it gives, and the tag it names.
fn check(d: &mut Decoder, input: &[u8], kind: ErrorKind, tag: Option<u32>) {
    let e = error_of(d, input);
    assert_eq!(
        (e.kind, e.tag),
        (kind, tag),
        "{:?}: {e}",
        String::from_utf8_lossy(input)
    );
    assert!(e.skip >= 1 && e.skip <= input.len());
    assert!(e.offset < input.len());
}

#[test]
fn hostile_messages_say_what_is_wrong_and_where() {
    use ErrorKind::*;
    let mut d = decoder();
    let good = frame("35=0|49=A|56=B|34=1|52=20261206-22:00:00|");
    let mut bad_sum = good.clone();
    let n = bad_sum.len();
    bad_sum[n - 2] = if bad_sum[n - 2] == b'0' { b'1' } else { b'0' };
    let e = error_of(&mut d, &bad_sum);
    assert!(matches!(e.kind, CheckSum { .. }));
    assert_eq!((e.offset, e.tag, e.skip), (n - 4, Some(10), n));

    let cases: Vec<(Vec<u8>, ErrorKind, Option<u32>)> = vec![
        // BodyLength one too long, one too short: CheckSum is not where it says.
        (
            with_checksum("8=FIX.4.4|9=6|35=0|49=A|"),
            BodyLengthMismatch { body_bytes: 6 },
            Some(9),
        ),
        (
            with_checksum("8=FIX.4.4|9=9|35=0|49=A|"),
            BodyLengthMismatch { body_bytes: 9 },
            Some(9),
        ),
        (
            with_checksum("8=FIX.4.4|9=010|35=0|49=A|"),
            BodyLength,
            Some(9),
        ),
        (
            with_checksum("8=FIX.4.4|9=1x|35=0|49=A|"),
            BodyLength,
            Some(9),
        ),
        (
            with_checksum("8=FIX.4.4|9=|35=0|49=A|"),
            BodyLength,
            Some(9),
        ),
        (
            with_checksum("8=FIX.4.4|9=-5|35=0|49=A|"),
            BodyLength,
            Some(9),
        ),
        (with_checksum("8=FIX.4.4|9=4|35=0|"), BodyLength, Some(9)),
        // Duplicate tags; a declared group tag may repeat (see below).
        (
            frame("35=D|55=BTCUSDT|54=1|55=ETHUSDT|"),
            DuplicateTag,
            Some(55),
        ),
        (frame("35=D|35=D|"), DuplicateTag, Some(35)),
        (frame("35=D|9000=a|9000=b|"), DuplicateTag, Some(9000)),
        // Missing BeginString, BodyLength, MsgType, CheckSum.
        (raw("9=5|35=0|10=000|"), Garbage, None),
        (frame("35=0|")[10..].to_vec(), Garbage, None),
        (with_checksum("8=FIX.4.4|35=0|49=A|"), BodyLength, Some(9)),
        (frame("49=A|35=0|"), MsgTypeNotThird, None),
        (
            raw("8=FIX.4.4|9=5|35=0|11=ABCDEF|"),
            BodyLengthMismatch { body_bytes: 5 },
            Some(9),
        ),
        (raw("8=FIX.4.2|9=5|35=0|10=000|"), BeginString, None),
        (raw("8=FIXT.1.1|9=5|35=0|10=000|"), BeginString, None),
        // Tags: zero, leading zero, not digits, empty, too long.
        (frame("35=0|0=x|"), Tag, None),
        (frame("35=0|049=x|"), Tag, None),
        (frame("35=0|4a9=x|"), Tag, None),
        (frame("35=0|ab=x|"), Tag, None),
        (frame("35=0|=x|"), Tag, None),
        (frame("35=0|-1=x|"), Tag, None),
        (frame("35=0|1234567890=x|"), Tag, None),
        // A SOH inside a value: BodyLength covers it, and what follows has no '='.
        (frame("35=0|58=a|b|"), Tag, None),
        (frame("35=0|58=a|12|"), NoEquals, Some(12)),
        (frame("35=0|58=|"), EmptyValue, Some(58)),
        (frame("35=|58=x|"), EmptyValue, Some(35)),
        // The codec's own tags out of place.
        (frame("35=0|8=FIX.4.4|"), TagOutOfPlace, Some(8)),
        (frame("35=0|9=5|"), TagOutOfPlace, Some(9)),
        (frame("35=0|10=000|"), TagOutOfPlace, Some(10)),
        // CheckSum syntax.
        (raw("8=FIX.4.4|9=5|35=0|10=1a3|"), CheckSumSyntax, Some(10)),
        (raw("8=FIX.4.4|9=5|35=0|10=256|"), CheckSumSyntax, Some(10)),
        (raw("8=FIX.4.4|9=5|35=0|10=0000"), CheckSumSyntax, Some(10)),
        // A body whose last field runs into the trailer.
        (
            with_checksum("8=FIX.4.4|9=9|35=0|58=x"),
            Unterminated,
            Some(58),
        ),
    ];
    for (input, kind, tag) in &cases {
        check(&mut d, input, *kind, *tag);
    }

    // Back to back: the first message decodes, the second follows.
    let two = [good.clone(), frame("35=1|112=T|")].concat();
    let (_, used) = d.next(&two).unwrap().unwrap();
    let (m, rest) = d.next(&two[used..]).unwrap().unwrap();
    assert_eq!((m.msg_type(), used + rest), (&b"1"[..], two.len()));
    // An error in the first says to skip exactly to the second.
    let two = [frame("35=D|55=A|55=B|"), good.clone()].concat();
    let e = error_of(&mut d, &two);
    assert_eq!(e.skip, two.len() - good.len());
    // A decoder that knows a group lets its tags repeat.
    let grouped = frame("35=8|453=2|448=A|452=3|448=B|452=1|");
    decode_whole(&mut d, &grouped);
    check(
        &mut Decoder::new(Limits::default()),
        &grouped,
        DuplicateTag,
        Some(448),
    );
    // A tag past the bitset is still checked for duplicates, and a failed message
    // leaves nothing behind for the next.
    decode_whole(&mut d, &frame("35=D|9000=a|55=BTCUSDT|"));
    decode_whole(&mut d, &good);
}

#[test]
fn values_parse_exactly_or_not_at_all() {
    use ValueError::*;
    for (v, want) in [
        ("0", Ok(0)),
        ("007", Ok(7)),
        ("18446744073709551615", Ok(u64::MAX)),
        ("18446744073709551616", Err(Overflow)),
        ("99999999999999999999999", Err(Overflow)),
        ("-1", Err(Integer)),
        ("+1", Err(Integer)),
        ("", Err(Integer)),
        (" 1", Err(Integer)),
        ("1.0", Err(Integer)),
    ] {
        assert_eq!(parse_u64(v.as_bytes()), want, "u64 {v:?}");
    }
    for (v, want) in [
        ("-9223372036854775808", Ok(i64::MIN)),
        ("9223372036854775807", Ok(i64::MAX)),
        ("9223372036854775808", Err(Overflow)),
        ("-9223372036854775809", Err(Overflow)),
        ("-0", Ok(0)),
        ("-", Err(Integer)),
        ("--1", Err(Integer)),
        ("+1", Err(Integer)),
    ] {
        assert_eq!(parse_i64(v.as_bytes()), want, "i64 {v:?}");
    }
    for (v, want) in [
        ("65000.1", Ok(dec!(65000.1))),
        ("-0.5", Ok(dec!(-0.5))),
        ("0.500", Ok(dec!(0.500))),
        ("1.", Ok(dec!(1))),
        (".5", Ok(dec!(0.5))),
        ("0.000000001", Ok(dec!(0.000000001))),
        ("00012", Ok(dec!(12))),
        ("1e5", Err(Decimal)),
        ("+1", Err(Decimal)),
        ("1.2.3", Err(Decimal)),
        (".", Err(Decimal)),
        ("-", Err(Decimal)),
        ("", Err(Decimal)),
        ("1_000", Err(Decimal)),
        ("NaN", Err(Decimal)),
        (" 1", Err(Decimal)),
        ("0.00000000000000000000000000001", Err(Overflow)),
        ("99999999999999999999999999999999", Err(Overflow)),
    ] {
        assert_eq!(parse_decimal(v.as_bytes()), want, "decimal {v:?}");
    }
    let s = |secs: u64| Ok(Nanos(secs * 1_000_000_000));
    for (v, want) in [
        ("19700101-00:00:00", s(0)),
        (
            "20240611-09:01:46.228",
            Ok(Nanos(1_718_096_506_228_000_000)),
        ),
        ("20240229-23:59:59", s(1_709_251_199)),
        (
            "20240229-23:59:59.000001",
            Ok(Nanos(1_709_251_199_000_001_000)),
        ),
        (
            "20240229-23:59:59.000000001",
            Ok(Nanos(1_709_251_199_000_000_001)),
        ),
        ("20240229-23:59:60", s(1_709_251_200)),
        ("20000301-00:00:00", s(951_868_800)),
        ("20230229-00:00:00", Err(Timestamp)),
        ("21000229-00:00:00", Err(Timestamp)),
        ("19691231-23:59:59", Err(Timestamp)),
        ("20241301-00:00:00", Err(Timestamp)),
        ("20240001-00:00:00", Err(Timestamp)),
        ("20240100-00:00:00", Err(Timestamp)),
        ("20240101-24:00:00", Err(Timestamp)),
        ("20240101-00:60:00", Err(Timestamp)),
        ("20240101-00:00:61", Err(Timestamp)),
        ("20240101 00:00:00", Err(Timestamp)),
        ("20240101-00-00-00", Err(Timestamp)),
        ("20240101-00:00:00.12", Err(Timestamp)),
        ("20240101-00:00:00,123", Err(Timestamp)),
        ("20240101-00:00:00.1a3", Err(Timestamp)),
        ("2024010-100:00:00", Err(Timestamp)),
        ("+0240101-00:00:00", Err(Timestamp)),
        ("25540101-00:00:00", s(18_429_292_800)),
        ("25550101-00:00:00", Err(Timestamp)),
        ("99991231-23:59:59.999999999", Err(Timestamp)),
        ("", Err(Timestamp)),
    ] {
        assert_eq!(parse_timestamp(v.as_bytes()), want, "timestamp {v:?}");
    }
    assert_eq!(parse_char(b"F"), Ok(b'F'));
    assert_eq!(parse_char(b" "), Ok(b' '));
    for v in [&b"FF"[..], b"", b"\x7f", b"\x00", b"\xc3"] {
        assert_eq!(parse_char(v), Err(Char), "char {v:?}");
    }
}

#[test]
fn timestamps_write_and_read_back_at_every_precision() {
    let enc = Encoder::default();
    let mut d = decoder();
    for ns in [0, 1, 999_999_999, 1_709_251_199_123_456_789, u64::MAX] {
        for (precision, unit) in [
            (TimePrecision::Seconds, 1_000_000_000),
            (TimePrecision::Millis, 1_000_000),
            (TimePrecision::Micros, 1_000),
            (TimePrecision::Nanos, 1),
        ] {
            let mut out = Vec::new();
            let mut w = enc.begin_msg_type(&mut out, b"0").unwrap();
            w.timestamp(60, Nanos(ns), precision).unwrap();
            w.finish();
            let (m, _) = d.next(&out).unwrap().unwrap();
            assert_eq!(
                m.timestamp(60),
                Ok(Nanos(ns / unit * unit)),
                "{ns} {precision:?}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "cannot repeat")]
fn the_codec_tags_cannot_be_declared_repeatable() {
    let _ = Decoder::new(Limits::default()).with_repeatable(&[448, 35]);
}

/// A field the encoder may write: a tag it does not own and a value without SOH.
fn any_field() -> impl Strategy<Value = (u32, Vec<u8>)> {
    (
        prop_oneof![11u32..8192, 8192u32..1_000_000],
        proptest::collection::vec(0x02u8..=0xff, 1..24),
    )
        .prop_filter("the codec's own tags", |(t, _)| {
            !matches!(t, 8 | 9 | 10 | 35)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any message the encoder writes decodes to the same fields and bytes.
    #[test]
    fn written_messages_always_round_trip(
        msg_type in proptest::collection::vec(b'0'..=b'z', 1..3),
        fields in proptest::collection::btree_map(11u32..1_000_000, proptest::collection::vec(0x02u8..=0xff, 1..24), 0..40),
        extra in any_field(),
    ) {
        let fields: Vec<(u32, Vec<u8>)> = fields
            .into_iter()
            .filter(|(t, _)| !matches!(t, 8 | 9 | 10 | 35))
            .chain(std::iter::once(extra.clone()))
            .collect();
        let mut out = Vec::new();
        let mut w = Encoder::default().begin_msg_type(&mut out, &msg_type).unwrap();
        for (t, v) in &fields {
            w.bytes(*t, v).unwrap();
        }
        w.finish();
        let mut d = Decoder::new(Limits::default()).with_repeatable(&[extra.0]);
        let (m, used) = d.next(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(m.msg_type(), &msg_type[..]);
        let got: Vec<(u32, Vec<u8>)> =
            m.fields().skip(3).take(m.len() - 4).map(|(t, v)| (t, v.to_vec())).collect();
        prop_assert_eq!(&got, &fields);
        prop_assert_eq!(write_back(&m), out.clone());
        let repeated = fields[..fields.len() - 1].iter().any(|(t, _)| *t == extra.0);
        let fuzz_groups = [447, 448, 452].contains(&extra.0);
        prop_assert_eq!(fuzzing::fix_codec(&out), usize::from(!repeated || fuzz_groups));
    }

    /// Valid messages damaged anywhere, cut anywhere, never panic the codec.
    #[test]
    fn damaged_messages_never_panic(
        which in 0usize..11,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
        cut in 0usize..400,
        twice in any::<bool>(),
    ) {
        let mut bytes = frame(&samples()[which].1);
        if twice {
            bytes = [bytes.clone(), bytes].concat();
        }
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        fuzzing::fix_codec(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        prefixed in any::<bool>(),
    ) {
        let bytes = if prefixed {
            [&b"8=FIX.4.4\x019="[..], &bytes].concat()
        } else {
            bytes
        };
        fuzzing::fix_codec(&bytes);
    }
}
