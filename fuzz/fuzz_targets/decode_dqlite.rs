//! Fuzzes the dqlite client's reading side (`src/dqlite/wire.rs`): a byte stream as a dqlite
//! server would send it, cut into messages by `Header::parse` and read with `decode`.
//!
//! Input: the bytes as they would arrive, header after body after header. A body cut short by
//! the end of the input is decoded as it is (what a client would do with a damaged message it
//! believed whole).
//!
//! Checked for every input (besides "nothing panics", and AddressSanitizer's checks):
//! - a header is refused (`TooLarge`) exactly when it announces more than `BODY_LIMIT`;
//! - a decoded answer's `Debug` does not panic, and a `Rows` part's rows each have one value per
//!   column (the decoder never hands out a ragged row).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlite3_cluster::dqlite::wire::{decode, DecodeError, Header, Response, BODY_LIMIT};

fuzz_target!(|data: &[u8]| {
  let mut rest = data;
  while rest.len() >= 8 {
    let word: [u8; 8] = rest[..8].try_into().expect("eight bytes");
    let announced = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) as usize * 8;
    let header = match Header::parse(word) {
      Ok(header) => header,
      Err(DecodeError::TooLarge(len)) => {
        assert!(len > BODY_LIMIT && len == announced, "refused a header within the limit");
        return;
      }
      Err(e) => panic!("a header fails only as too large, not {e:?}"),
    };
    assert!(announced <= BODY_LIMIT);
    rest = &rest[8..];
    let body = &rest[..header.len.min(rest.len())];
    rest = &rest[body.len()..];
    match decode(&header, body) {
      Ok(Response::Rows(part)) => {
        for row in &part.rows {
          assert_eq!(row.len(), part.columns.len(), "a row with the wrong number of values");
        }
        let _ = format!("{part:?}");
      }
      Ok(response) => {
        let _ = format!("{response:?}");
      }
      Err(e) => {
        let _ = e.to_string();
      }
    }
  }
});
