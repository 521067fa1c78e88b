//! Fuzzes the cluster socket's reading side (`src/cluster/wire.rs`): `FrameBuffer` cutting a
//! byte stream into frames, and `decode::<T>()` of every frame body, for each message type
//! that crosses the socket.
//!
//! Input layout: one selector byte, then the bytes as they would arrive on the socket.
//!
//! selector bits | meaning
//! --------------|------------------------------------------------------------------------
//! 0..=2         | message type, `(bits % 6)`: 0 Up, 1 Down, 2 Hello, 3 Challenge, 4 Proof,
//!               | 5 Verdict (6 and 7 wrap to Up and Down)
//! 3             | with bit 7: the first frame is read under HANDSHAKE_LIMIT, then the limit
//!               | is raised to FRAME_LIMIT (what a connection does after the handshake)
//! 4..=6         | how the bytes arrive: 0 all at once, n > 0 in chunks of 4^(n-1) bytes
//!               | (1, 4, 16, …, 4096), draining frames after each chunk (exercises compaction
//!               | and frames split across reads)
//! 7             | HANDSHAKE_LIMIT (1 KiB) instead of FRAME_LIMIT (256 MiB)
//!
//! Checked for every input (besides "nothing panics"):
//! - each frame body `next_frame()` hands out is exactly the bytes after its 4-byte header in
//!   the stream, in order, and no longer than the limit in force;
//! - `TooLarge` is reported only for a header announcing more than the limit, and `None` only
//!   when the rest of the stream really is an incomplete frame;
//! - a body that decodes re-encodes (`encode` succeeds), the re-encoding is no longer than the
//!   body, decodes again, and re-encodes to the same bytes (`encode(decode(encode(x))) ==
//!   encode(x)`); for the handshake types (which are `Eq`) the values are equal too. `Up` and
//!   `Down` are compared by bytes because they may carry a NaN `Value::Real`.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlite3_cluster::cluster::wire::{
  decode, encode, Challenge, Down, FrameBuffer, Hello, Proof, Up, Verdict, WireError, FRAME_LIMIT,
  HANDSHAKE_LIMIT,
};

fuzz_target!(|data: &[u8]| {
  let Some((&selector, stream)) = data.split_first() else {
    return;
  };
  match (selector & 0x07) % 6 {
    0 => run::<Up>(selector, stream, compare_bytes_only, inspect_up),
    1 => run::<Down>(selector, stream, compare_bytes_only, inspect_down),
    2 => run::<Hello>(selector, stream, compare_eq, ignore),
    3 => run::<Challenge>(selector, stream, compare_eq, ignore),
    4 => run::<Proof>(selector, stream, compare_eq, ignore),
    _ => run::<Verdict>(selector, stream, compare_eq, ignore),
  }
});

fn compare_eq<T: PartialEq + Debug>(a: &T, b: &T) {
  assert_eq!(a, b, "a decoded message differs from its re-encoding decoded");
}

fn compare_bytes_only<T>(_: &T, _: &T) {}

fn ignore<T>(_: &T) {}

fn inspect_up(message: &Up) {
  // Debug output must not panic either (it goes to logs); `Key` has a hand-written one.
  let _ = format!("{message:?}");
}

fn inspect_down(message: &Down) {
  let _ = message.finishes_request();
  let _ = format!("{message:?}");
}

fn run<T: Serialize + DeserializeOwned>(selector: u8, stream: &[u8], compare: fn(&T, &T), inspect: fn(&T)) {
  let handshake = selector & 0x80 != 0;
  let raise_after_first = handshake && selector & 0x08 != 0;
  let mut limit = if handshake { HANDSHAKE_LIMIT } else { FRAME_LIMIT };
  let chunk = match (selector >> 4) & 0x07 {
    0 => stream.len().max(1),
    n => 1usize << (2 * (n - 1)),
  };

  let mut buffer = FrameBuffer::new(limit);
  // How much of `stream` was handed to the buffer, and how much of it came back as frames.
  let mut fed = 0;
  let mut consumed = 0;
  for piece in stream.chunks(chunk) {
    buffer.extend(piece);
    fed += piece.len();
    loop {
      match buffer.next_frame() {
        Ok(Some(range)) => {
          let body = buffer.bytes(range);
          let header = &stream[consumed..consumed + 4];
          assert_eq!(
            header,
            (body.len() as u32).to_le_bytes(),
            "frame length is not its header"
          );
          assert!(
            body.len() <= limit,
            "a frame of {} bytes passed a limit of {limit}",
            body.len()
          );
          assert_eq!(
            body,
            &stream[consumed + 4..consumed + 4 + body.len()],
            "frame body is not the stream's bytes"
          );
          consumed += 4 + body.len();
          assert!(consumed <= fed);
          check_body::<T>(body, compare, inspect);
          if raise_after_first && limit == HANDSHAKE_LIMIT {
            limit = FRAME_LIMIT;
            buffer.set_limit(limit);
          }
        }
        Ok(None) => {
          let rest = &stream[consumed..fed];
          if rest.len() >= 4 {
            let size = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(size <= limit, "an oversized header was not refused");
            assert!(rest.len() < 4 + size, "a complete frame was not handed out");
          }
          break;
        }
        Err(e) => {
          let _ = e.to_string();
          match e {
            WireError::TooLarge {
              size,
              limit: reported,
            } => {
              assert_eq!(reported, limit);
              assert!(size > limit);
              let header = &stream[consumed..consumed + 4];
              assert_eq!(u32::from_le_bytes(header.try_into().unwrap()) as usize, size);
            }
            other => panic!("next_frame failed with something else than TooLarge: {other}"),
          }
          // The connection would be dropped here.
          return;
        }
      }
    }
  }
}

fn check_body<T: Serialize + DeserializeOwned>(body: &[u8], compare: fn(&T, &T), inspect: fn(&T)) {
  let first: T = match decode(body) {
    Ok(message) => message,
    Err(e) => {
      assert!(
        matches!(e, WireError::Malformed(_)),
        "decode failed with something else than Malformed"
      );
      let _ = e.to_string();
      return;
    }
  };
  inspect(&first);

  let mut once = Vec::new();
  let size = encode(&first, &mut once).expect("a decoded message must re-encode");
  assert_eq!(size + 4, once.len());
  assert_eq!(once[..4], (size as u32).to_le_bytes());
  // bincode's varints accept non-minimal encodings, so the re-encoding may be shorter than the
  // body, never longer.
  assert!(
    size <= body.len(),
    "re-encoding grew from {} to {size} bytes",
    body.len()
  );

  let second: T = decode(&once[4..]).expect("a re-encoded message must decode");
  compare(&first, &second);
  let mut twice = Vec::new();
  encode(&second, &mut twice).expect("a decoded message must re-encode");
  assert_eq!(once, twice, "encode(decode(encode(x))) != encode(x)");
}
