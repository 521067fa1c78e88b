//! Writes the seed corpus of the `decode_frames` fuzz target: `corpus/decode_frames/seed-*.bin`.
//!
//!     cd fuzz && cargo run --example gen_seeds
//!
//! Each seed is the target's selector byte (see `fuzz_targets/decode_frames.rs`) followed by
//! one or more valid frames, exactly as `wire::encode` writes them. The output is
//! deterministic, so rerunning it leaves the committed seeds unchanged unless the wire format
//! changed (then commit the new seeds).

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlite3_cluster::cluster::wire::{
  decode, encode, Challenge, Down, FrameBuffer, Hello, Proof, Up, Verdict, FRAME_LIMIT, HANDSHAKE_LIMIT,
  MAGIC, VERSION,
};
use sqlite3_cluster::error::{ClusterCode, Error};
use sqlite3_cluster::protocol::{
  ChangeKind, Event, Key, Mode, OpenOptions, Outgoing, Request, Response, Rows, Setting, Shape,
};
use sqlite3_cluster::value::{Bind, ParamKey, Params, Value};

// Selector bytes (message type in bits 0..=2, chunked delivery in bits 4..=6, handshake limit
// in bit 7).
const UP: u8 = 0x00;
const DOWN: u8 = 0x01;
const HELLO: u8 = 0x82;
const CHALLENGE: u8 = 0x83;
const PROOF: u8 = 0x84;
const VERDICT: u8 = 0x85;
/// Delivered in 16-byte pieces.
const CHUNKED_16: u8 = 0x30;
/// Delivered one byte at a time.
const CHUNKED_1: u8 = 0x10;

fn seed<T: Serialize + DeserializeOwned>(selector: u8, messages: &[T]) -> Vec<u8> {
  let mut out = vec![selector];
  for message in messages {
    encode(message, &mut out).expect("encode");
  }
  // Sanity: the frames cut and decode back.
  let limit = if selector & 0x80 != 0 {
    HANDSHAKE_LIMIT
  } else {
    FRAME_LIMIT
  };
  let mut buffer = FrameBuffer::new(limit);
  buffer.extend(&out[1..]);
  let mut count = 0;
  while let Some(body) = buffer.next_frame().expect("frame within the limit") {
    decode::<T>(buffer.bytes(body)).expect("decode");
    count += 1;
  }
  assert_eq!(count, messages.len());
  out
}

fn rows(id: u32, columns: &[&str], values: Vec<Value>) -> Rows {
  Rows {
    shape: Arc::new(Shape {
      id,
      columns: columns.iter().map(|c| c.to_string()).collect(),
    }),
    values,
  }
}

fn every_value() -> Vec<Value> {
  vec![
    Value::Null,
    Value::Integer(0),
    Value::Integer(i64::MIN),
    Value::Integer(i64::MAX),
    Value::Real(3.5),
    Value::Real(-0.0),
    Value::Real(f64::from_bits(0x7ff8_0000_0000_0001)),
    Value::Text(String::new()),
    Value::Text("x\0y\u{e9}\u{1F600}".into()),
    Value::Blob(Vec::new()),
    Value::Blob(vec![0, 255, 1, 128]),
  ]
}

fn main() {
  let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/decode_frames");
  std::fs::create_dir_all(&dir).expect("corpus dir");

  let hello = Hello {
    magic: MAGIC,
    version: VERSION,
    pid: 4242,
    nonce: [0x5a; 32],
  };
  let challenge = Challenge {
    magic: MAGIC,
    version: VERSION,
    pid: 1,
    nonce: [0xa5; 32],
    proof: Some([7; 32]),
    keyed: true,
  };

  let query = Up::Request {
    session: 1,
    id: 2,
    request: Request::Query {
      sql: "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?".into(),
      params: Params::Positional(
        std::iter::once(Bind::Skip)
          .chain(every_value().into_iter().map(Bind::Value))
          .collect(),
      ),
      mode: Mode::All,
    },
  };

  let session = vec![
    Up::Attach { session: 3 },
    Up::Request {
      session: 3,
      id: 0,
      request: Request::Open(OpenOptions {
        filename: "/tmp/db.sqlite".into(),
        flags: 6,
        key: Some(Key::Passphrase("secret".into())),
        legacy: None,
        strict_key: true,
        deferred_key: false,
        verbose: false,
        busy_timeout_ms: 5000,
        transaction_timeout_ms: 0,
      }),
    },
    Up::Request {
      session: 3,
      id: 1,
      request: Request::Prepare {
        stmt: 9,
        sql: "SELECT * FROM t WHERE a = $a AND b = :b".into(),
      },
    },
    Up::Request {
      session: 3,
      id: 2,
      request: Request::Bind {
        stmt: 9,
        params: Params::Named(vec![
          (ParamKey::Name("$a".into()), Bind::Value(Value::Integer(1))),
          (ParamKey::Index(2), Bind::Skip),
        ]),
      },
    },
    Up::Request {
      session: 3,
      id: 3,
      request: Request::Execute {
        stmt: 9,
        params: Params::None,
        mode: Mode::Each,
      },
    },
    Up::Resume { session: 3 },
    Up::Interrupt { session: 3 },
    Up::Request {
      session: 3,
      id: 4,
      request: Request::Reset { stmt: 9 },
    },
    Up::Request {
      session: 3,
      id: 5,
      request: Request::Finalize { stmt: 9 },
    },
    Up::Request {
      session: 3,
      id: 6,
      request: Request::Exec {
        sql: "BEGIN; COMMIT;".into(),
      },
    },
    Up::Request {
      session: 3,
      id: 7,
      request: Request::Configure(Setting::Limit { id: 1, value: 1000 }),
    },
    Up::Request {
      session: 3,
      id: 8,
      request: Request::Configure(Setting::Trace(true)),
    },
    Up::Request {
      session: 3,
      id: 9,
      request: Request::Key(Key::Raw(vec![0x11; 32]), None),
    },
    Up::Request {
      session: 3,
      id: 10,
      request: Request::LoadExtension {
        path: "ext.so".into(),
      },
    },
    Up::Request {
      session: 3,
      id: 11,
      request: Request::Wait,
    },
    Up::Request {
      session: 3,
      id: 12,
      request: Request::Abort,
    },
    Up::Request {
      session: 3,
      id: 13,
      request: Request::Close,
    },
    Up::Detach { session: 3 },
  ];

  let reply = |id, response| Down::Message {
    session: 1,
    message: Outgoing::Reply { id, response },
  };
  let rows_reply = reply(
    2,
    Response::Rows(rows(7, &["a", "b\0c"], {
      let mut values = every_value();
      values.push(Value::Null); // 12 values, 2 columns
      values
    })),
  );
  let down_mixed = vec![
    Down::Message {
      session: 1,
      message: Outgoing::Txn(true),
    },
    Down::Message {
      session: 1,
      message: Outgoing::Event(Event::Trace("SELECT 1".into())),
    },
    Down::Message {
      session: 1,
      message: Outgoing::Event(Event::Profile {
        sql: "SELECT 1".into(),
        nanos: 12345,
      }),
    },
    Down::Message {
      session: 1,
      message: Outgoing::Event(Event::Change {
        kind: ChangeKind::Update,
        database: "main".into(),
        table: "t".into(),
        rowid: -1,
      }),
    },
    reply(0, Response::Done),
    reply(
      1,
      Response::Run {
        last_id: 10,
        changes: 1,
      },
    ),
    reply(2, Response::Row(None)),
    reply(3, Response::Row(Some(rows(1, &["x"], vec![Value::Integer(1)])))),
    reply(
      4,
      Response::Chunk(rows(2, &["x", "y"], vec![Value::Null, Value::Real(1.0)])),
    ),
    reply(
      4,
      Response::EachEnd {
        error: Some(Error::Cluster {
          code: ClusterCode::MasterLost,
          message: "gone".into(),
        }),
      },
    ),
    reply(
      5,
      Response::Error(Error::Sqlite {
        code: 19,
        message: "constraint".into(),
      }),
    ),
    reply(
      6,
      Response::PrepareError(Error::Sqlite {
        code: 1,
        message: "syntax".into(),
      }),
    ),
    reply(7, Response::Dropped),
    Down::Closing,
  ];

  let seeds: Vec<(&str, Vec<u8>)> = vec![
    ("seed-hello.bin", seed(HELLO, &[hello.clone()])),
    ("seed-challenge.bin", {
      let unkeyed = Challenge {
        proof: None,
        keyed: false,
        ..challenge.clone()
      };
      seed(CHALLENGE, &[challenge, unkeyed])
    }),
    (
      "seed-proof.bin",
      seed(
        PROOF,
        &[Proof {
          proof: Some([0x3c; 32]),
        }],
      ),
    ),
    ("seed-proof-none.bin", seed(PROOF, &[Proof { proof: None }])),
    (
      "seed-verdict.bin",
      seed(
        VERDICT,
        &[Verdict::Welcome, Verdict::Refused("wrong secret".into())],
      ),
    ),
    ("seed-up-attach.bin", seed(UP, &[Up::Attach { session: 1 }])),
    ("seed-up-query.bin", seed(UP, &[query])),
    ("seed-up-session.bin", seed(UP | CHUNKED_16, &session)),
    ("seed-down-rows.bin", seed(DOWN, &[rows_reply])),
    ("seed-down-closing.bin", seed(DOWN, &[Down::Closing])),
    ("seed-down-mixed.bin", seed(DOWN | CHUNKED_1, &down_mixed)),
    // The handshake limit raised after the first frame, as on a real connection.
    ("seed-hello-then-up.bin", {
      let mut s = seed(HELLO | 0x08, &[hello]);
      // Followed by frames of another type (decoded as Hello, they are malformed).
      encode(&Up::Attach { session: 0 }, &mut s).unwrap();
      s
    }),
  ];
  for (name, bytes) in seeds {
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write seed");
    println!("{} ({} bytes)", path.display(), bytes.len());
  }
}
