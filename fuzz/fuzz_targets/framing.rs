//! `Framer` on a byte stream that arrives in fuzzer-chosen pieces.
//!
//! Input layout: byte 0 picks the framer's maximum message size (low 2 bits) and
//! how many chunk sizes follow (high 6 bits, mod 16); those bytes are chunk sizes,
//! used in turn, cyclically, until the stream is fed; the rest is the stream.
//!
//! Contract checked (see `Framer`'s doc):
//! - a frame never consumes more than the buffer holds, and every frame but
//!   `NeedMore` consumes something (so the caller's loop ends);
//! - fed in pieces or all at once, the same frames come out, and the stream ends
//!   the same way (waiting for more, or an error at the same place);
//! - every `Message(n)` slice parses or is rejected with an error, never a panic,
//!   and when it parses, the parser sees exactly `n` bytes of message: the framer
//!   and the parser agree on where the message ends (a disagreement would let one
//!   stream be read as different messages by us and by the next hop).
#![no_main]

use coresip::sip::error::ParseError;
use coresip::sip::framing::{Frame, Framer};
use coresip::sip::message::Message;
use libfuzzer_sys::fuzz_target;

mod common;

const MAX_LENS: [usize; 4] = [48, 300, 1500, 65_535];

/// How a stream ended: waiting for more bytes, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    NeedMore,
    Error(ParseError),
}

/// Frames and how the stream ended.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Frame>,
    end: End,
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let max_len = MAX_LENS[usize::from(ctl & 3)];
    let n_sizes = usize::from(ctl >> 2) % 16;
    let (sizes, stream) = rest.split_at(n_sizes.min(rest.len()));

    let at_once = feed_at_once(max_len, stream);
    let in_pieces = feed_in_pieces(max_len, stream, sizes);
    assert_eq!(at_once.frames, in_pieces.frames, "pieces change the frames");
    match (at_once.end, in_pieces.end) {
        (a, b) if a == b => {}
        // A header section over the limit is TooLarge while it is still incomplete;
        // once its blank line is in the buffer, the Content-Length is looked at
        // first and may be the error reported. Either way the stream is refused
        // at the same place.
        (End::Error(ParseError::TooLarge), End::Error(_))
        | (End::Error(_), End::Error(ParseError::TooLarge)) => {}
        (a, b) => panic!("at once the stream ends {a:?}, in pieces {b:?}"),
    }
});

/// The frames of `stream` handed over in one buffer.
fn feed_at_once(max_len: usize, stream: &[u8]) -> Outcome {
    let mut framer = Framer::new(max_len);
    let mut frames = Vec::new();
    let mut pos = 0;
    let end = loop {
        let buf = &stream[pos..];
        match framer.frame(buf) {
            Ok(Frame::NeedMore) => break End::NeedMore,
            Ok(frame) => {
                check_frame(buf, frame, max_len);
                frames.push(frame);
                pos += frame.len();
            }
            Err(e) => break End::Error(e),
        }
    };
    Outcome { frames, end }
}

/// The frames of `stream` when the buffer grows by `sizes` (cyclically) and the
/// caller drops each frame's bytes from its front, as a connection does.
fn feed_in_pieces(max_len: usize, stream: &[u8], sizes: &[u8]) -> Outcome {
    let mut framer = Framer::new(max_len);
    let mut frames = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let all_zero = sizes.iter().all(|&s| s == 0);
    let mut next_size = sizes.iter().cycle();
    loop {
        // The last piece is whatever remains once the sizes would stall.
        let size = match next_size.next() {
            Some(&s) if !all_zero => usize::from(s),
            _ => stream.len() - fed,
        };
        let take = size.min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + take]);
        fed += take;
        loop {
            match framer.frame(&buf) {
                Ok(Frame::NeedMore) => break,
                Ok(frame) => {
                    check_frame(&buf, frame, max_len);
                    frames.push(frame);
                    buf.drain(..frame.len());
                }
                Err(e) => {
                    return Outcome {
                        frames,
                        end: End::Error(e),
                    }
                }
            }
        }
        if fed == stream.len() {
            return Outcome {
                frames,
                end: End::NeedMore,
            };
        }
    }
}

/// One frame returned for `buf`.
fn check_frame(buf: &[u8], frame: Frame, max_len: usize) {
    let n = frame.len();
    assert!(n > 0, "{frame:?} consumes nothing");
    assert!(
        n <= buf.len(),
        "{frame:?} consumes more than the {} bytes held",
        buf.len()
    );
    match frame {
        Frame::Ping => assert_eq!(&buf[..4], b"\r\n\r\n"),
        Frame::KeepAlive(n) => {
            assert!(n <= 2);
            assert!(buf[..n].iter().all(|&b| b == b'\r' || b == b'\n'));
        }
        Frame::Message(n) => {
            assert!(n <= max_len, "Message({n}) over the maximum {max_len}");
            let bytes = &buf[..n];
            assert!(
                !matches!(bytes[0], b'\r' | b'\n'),
                "a message frame starts with CRLF"
            );
            if let Ok(msg) = Message::parse(bytes) {
                common::check_message(bytes, &msg);
                assert_eq!(msg.start_line_range().start, 0);
                assert_eq!(
                    msg.body_offset() + msg.body().len(),
                    n,
                    "the framer cut {n} bytes, the parser reads a message of another length"
                );
                assert!(
                    matches!(msg.content_length(), Ok(Some(_))),
                    "a framed message without a Content-Length the parser sees"
                );
            }
        }
        Frame::NeedMore => unreachable!(),
    }
}
