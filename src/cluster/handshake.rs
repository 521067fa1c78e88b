//! The handshake, both halves (docs/protocol.md#handshake, docs/security.md): the client sends
//! `Hello`, the master answers `Challenge` (with its proof of the `secret`), the client checks it
//! and answers `Proof`, the master answers `Verdict`. Each side proves it knows the secret
//! without sending it; a client also learns the master's pid and whether the database is
//! encrypted. Generic over the byte stream, so that it can be tested over an in-memory pipe;
//! the peer's uid is checked by the caller, on the socket, before this runs.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::auth;
use super::wire::{self, Challenge, Framed, Hello, Proof, Verdict, WireError};
use crate::error::{ClusterCode, Error};

/// The longest a master waits for a client to finish the handshake, and the longest a client
/// waits for a master (less when its `connectTimeout` leaves less).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest a client waits for a master's handshake, however little of `connectTimeout` is
/// left: a master that answers at all answers in far less.
pub const HANDSHAKE_AT_LEAST: Duration = Duration::from_millis(50);

/// What the master admits with.
pub struct Admission<'a> {
  pub secret: Option<&'a [u8]>,
  /// The database is encrypted (`Challenge::keyed`).
  pub keyed: bool,
  /// Refuses an authenticated client for this reason (`Verdict::Full`): it looks again later.
  pub full: Option<String>,
}

/// The master's half; true when the client is admitted. Anything else (a stranger, another
/// version, a wrong secret, a malformed or oversized frame, silence for `within`) is false or
/// an error, and the caller drops the connection.
pub async fn as_master<R, W>(
  framed: &mut Framed<R, W>,
  admission: &Admission<'_>,
  within: Duration,
) -> Result<bool, WireError>
where
  R: AsyncRead + Unpin,
  W: AsyncWrite + Unpin,
{
  match tokio::time::timeout(within, master_half(framed, admission)).await {
    Ok(result) => result,
    Err(_) => Ok(false),
  }
}

async fn master_half<R, W>(framed: &mut Framed<R, W>, admission: &Admission<'_>) -> Result<bool, WireError>
where
  R: AsyncRead + Unpin,
  W: AsyncWrite + Unpin,
{
  let Some(hello): Option<Hello> = framed.next().await? else {
    return Ok(false);
  };
  if hello.magic != wire::MAGIC {
    return Ok(false);
  }
  let Ok(nonce) = auth::nonce() else {
    return Ok(false); // no random source: no handshake (the client sees the connection close)
  };
  let secret = admission.secret;
  let challenge = Challenge {
    magic: wire::MAGIC,
    version: wire::VERSION,
    pid: std::process::id(),
    nonce,
    proof: secret.map(|s| auth::prove(s, auth::MASTER, &hello.nonce, &nonce)),
    keyed: admission.keyed,
  };
  framed.send(&challenge).await?;
  if hello.version != wire::VERSION {
    return Ok(false); // the client sees our version and explains the mismatch
  }
  let Some(Proof { proof }) = framed.next().await? else {
    return Ok(false);
  };
  let accepted = auth::verify(secret, auth::CLIENT, &nonce, &hello.nonce, proof.as_ref());
  let verdict = if let (true, Some(why)) = (accepted, &admission.full) {
    Verdict::Full(why.clone())
  } else if accepted {
    Verdict::Welcome
  } else if secret.is_none() {
    Verdict::Refused("this master has no `secret`, but the client sent one".into())
  } else {
    Verdict::Refused("the client's `secret` does not match the master's".into())
  };
  framed.send(&verdict).await?;
  Ok(accepted && admission.full.is_none())
}

/// How a client's attempt to join a master ended, when it did not.
#[derive(Debug)]
pub enum Attempt {
  /// No master now: try the lock, or again later.
  Retry,
  /// A master answered and refused us, or cannot be used: give up with this error.
  Fatal(Error),
  /// A master answered but takes no more clients now: look again, and say why if it lasts.
  Full(String),
}

fn cluster_error(code: ClusterCode, message: String) -> Attempt {
  Attempt::Fatal(Error::Cluster { code, message })
}

/// The client's half, with `secret`, against the master at `sock` (named in errors); the
/// master's `Challenge` when it admits us. A master that stays silent for `within`, or closes
/// the connection, is no master yet (`Retry`).
pub async fn as_client<R, W>(
  framed: &mut Framed<R, W>,
  secret: Option<&[u8]>,
  sock: &Path,
  within: Duration,
) -> Result<Challenge, Attempt>
where
  R: AsyncRead + Unpin,
  W: AsyncWrite + Unpin,
{
  match tokio::time::timeout(within, client_half(framed, secret, sock)).await {
    Ok(result) => result,
    Err(_) => Err(Attempt::Retry),
  }
}

async fn client_half<R, W>(
  framed: &mut Framed<R, W>,
  secret: Option<&[u8]>,
  sock: &Path,
) -> Result<Challenge, Attempt>
where
  R: AsyncRead + Unpin,
  W: AsyncWrite + Unpin,
{
  let nonce = auth::nonce().map_err(|e| {
    cluster_error(
      ClusterCode::Auth,
      format!("no random numbers for the handshake with the master ({e}): the kernel's getrandom failed"),
    )
  })?;
  let hello = Hello {
    magic: wire::MAGIC,
    version: wire::VERSION,
    pid: std::process::id(),
    nonce,
  };
  framed.send(&hello).await.map_err(|_| Attempt::Retry)?;
  let challenge: Challenge = match framed.next().await {
    Ok(Some(c)) => c,
    Ok(None) | Err(WireError::Io(_)) => return Err(Attempt::Retry),
    Err(e) => {
      return Err(cluster_error(
        ClusterCode::Protocol,
        format!(
          "the process at {} is not a sqlite3-cluster master this version understands ({e})",
          sock.display()
        ),
      ))
    }
  };
  if challenge.magic != wire::MAGIC || challenge.version != wire::VERSION {
    return Err(cluster_error(
      ClusterCode::Protocol,
      format!(
        "the master (pid {}) speaks cluster protocol {}, this process speaks {}: run one sqlite3-cluster version in every process",
        challenge.pid,
        challenge.version,
        wire::VERSION
      ),
    ));
  }
  if !auth::verify(
    secret,
    auth::MASTER,
    &nonce,
    &challenge.nonce,
    challenge.proof.as_ref(),
  ) {
    let why = match (secret, challenge.proof) {
      (None, _) => "the master requires a `secret` and this process has none",
      (Some(_), None) => "this process has a `secret` but the master has none",
      (Some(_), Some(_)) => "the master does not know this process's `secret`",
    };
    return Err(cluster_error(
      ClusterCode::Auth,
      format!(
        "{why} (master pid {}); give every process the same `secret`",
        challenge.pid
      ),
    ));
  }
  let proof = Proof {
    proof: secret.map(|s| auth::prove(s, auth::CLIENT, &challenge.nonce, &nonce)),
  };
  framed.send(&proof).await.map_err(|_| Attempt::Retry)?;
  match framed.next::<Verdict>().await {
    Ok(Some(Verdict::Welcome)) => Ok(challenge),
    Ok(Some(Verdict::Refused(why))) => Err(cluster_error(
      ClusterCode::Auth,
      format!("the master (pid {}) refused this process: {why}", challenge.pid),
    )),
    Ok(Some(Verdict::Full(why))) => Err(Attempt::Full(format!(
      "the master (pid {}) takes no more clients: {why}",
      challenge.pid
    ))),
    _ => Err(Attempt::Retry),
  }
}

#[cfg(test)]
mod tests {
  //! Both halves against each other, or against a peer written out by hand, over an in-memory
  //! pipe: no socket, no file.

  use super::*;
  use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

  type Pipe = Framed<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

  const SOCK: &str = "/run/test.sock";
  const WAIT: Duration = Duration::from_secs(5);

  fn pipe() -> (Pipe, Pipe) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let ((ar, aw), (br, bw)) = (tokio::io::split(a), tokio::io::split(b));
    (Framed::new(ar, aw), Framed::new(br, bw))
  }

  /// Bytes that are not (all) a frame, as a broken or hostile peer sends them.
  async fn send_raw(writer: &mut wire::FrameWriter<WriteHalf<DuplexStream>>, bytes: &[u8]) {
    writer.pending().extend_from_slice(bytes);
    writer.write_out().await.unwrap();
  }

  fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap()
      .block_on(f)
  }

  /// Runs both halves to their end: the client's verdict and the master's. Each side drops its
  /// end when done, as the real callers do, so the other never waits on a dead peer.
  fn meet(client_secret: Option<&[u8]>, admission: Admission<'_>) -> (Result<Challenge, Attempt>, bool) {
    block_on(async {
      let (mut client, mut master) = pipe();
      let client = async move {
        let result = as_client(&mut client, client_secret, Path::new(SOCK), WAIT).await;
        drop(client);
        result
      };
      let master = async move {
        let admitted = as_master(&mut master, &admission, WAIT).await;
        drop(master);
        admitted
      };
      let (client, master) = tokio::join!(client, master);
      (client, matches!(master, Ok(true)))
    })
  }

  fn admission(secret: Option<&[u8]>) -> Admission<'_> {
    Admission {
      secret,
      keyed: false,
      full: None,
    }
  }

  fn fatal(result: Result<Challenge, Attempt>, code: ClusterCode, says: &str) {
    match result {
      Err(Attempt::Fatal(Error::Cluster { code: got, message })) => {
        assert_eq!(got, code, "{message}");
        assert!(message.contains(says), "{message:?} does not say {says:?}");
      }
      other => panic!("expected {code:?} saying {says:?}, got {other:?}"),
    }
  }

  #[test]
  fn the_same_secret_on_both_sides_admits_the_client() {
    let (client, admitted) = meet(
      Some(b"s3cret"),
      Admission {
        secret: Some(b"s3cret"),
        keyed: true,
        full: None,
      },
    );
    let challenge = client.expect("admitted");
    assert!(admitted);
    assert_eq!(challenge.pid, std::process::id());
    assert!(
      challenge.keyed,
      "the client learns that the database is encrypted"
    );
    let (client, admitted) = meet(None, admission(None));
    assert!(client.is_ok() && admitted, "no secret on either side");
  }

  #[test]
  fn a_wrong_or_missing_secret_is_refused_both_ways() {
    let (client, admitted) = meet(Some(b"wrong"), admission(Some(b"s3cret")));
    fatal(client, ClusterCode::Auth, "does not know this process's `secret`");
    assert!(!admitted);
    let (client, admitted) = meet(None, admission(Some(b"s3cret")));
    fatal(client, ClusterCode::Auth, "the master requires a `secret`");
    assert!(!admitted);
    let (client, admitted) = meet(Some(b"s3cret"), admission(None));
    fatal(client, ClusterCode::Auth, "the master has none");
    assert!(!admitted);
  }

  #[test]
  fn a_master_that_proves_the_secret_still_refuses_a_client_that_cannot() {
    // A client that checks nothing and proves with the wrong secret: the master's verdict.
    block_on(async {
      let (mut client, mut master) = pipe();
      let admitting = async { as_master(&mut master, &admission(Some(b"s3cret")), WAIT).await };
      let proving = async {
        let nonce = auth::nonce().unwrap();
        let hello = Hello {
          magic: wire::MAGIC,
          version: wire::VERSION,
          pid: 1,
          nonce,
        };
        client.send(&hello).await.unwrap();
        let challenge: Challenge = client.next().await.unwrap().unwrap();
        let proof = Proof {
          proof: Some(auth::prove(b"wrong", auth::CLIENT, &challenge.nonce, &nonce)),
        };
        client.send(&proof).await.unwrap();
        client.next::<Verdict>().await.unwrap()
      };
      let (admitted, verdict) = tokio::join!(admitting, proving);
      assert!(!admitted.unwrap());
      assert!(matches!(verdict, Some(Verdict::Refused(why)) if why.contains("does not match")));
    });
  }

  #[test]
  fn a_master_without_room_says_full_and_the_client_looks_again() {
    let (client, admitted) = meet(
      None,
      Admission {
        secret: None,
        keyed: false,
        full: Some("out of file descriptors".into()),
      },
    );
    assert!(matches!(client, Err(Attempt::Full(why)) if why.contains("out of file descriptors")));
    assert!(!admitted);
  }

  #[test]
  fn another_protocol_version_is_explained_not_retried() {
    // A client of another version: the master says its own version and stops.
    block_on(async {
      let (mut client, mut master) = pipe();
      let hello = Hello {
        magic: wire::MAGIC,
        version: wire::VERSION + 1,
        pid: 1,
        nonce: [7; 32],
      };
      client.send(&hello).await.unwrap();
      assert!(!as_master(&mut master, &admission(None), WAIT).await.unwrap());
      let challenge: Challenge = client.next().await.unwrap().unwrap();
      assert_eq!(challenge.version, wire::VERSION);
    });
    // A master of another version: the client gives up with `CLUSTER_PROTOCOL`.
    let result = block_on(async {
      let (mut client, mut master) = pipe();
      let challenge = Challenge {
        magic: wire::MAGIC,
        version: wire::VERSION + 1,
        pid: 99,
        nonce: [7; 32],
        proof: None,
        keyed: false,
      };
      master.send(&challenge).await.unwrap();
      as_client(&mut client, None, Path::new(SOCK), WAIT).await
    });
    fatal(result, ClusterCode::Protocol, "speaks cluster protocol");
  }

  #[test]
  fn an_oversized_frame_ends_the_handshake_before_it_is_read() {
    block_on(async {
      let (client, mut master) = pipe();
      let (_, mut raw) = client.into_parts();
      send_raw(&mut raw, &(wire::HANDSHAKE_LIMIT as u32 + 1).to_le_bytes()).await;
      let result = as_master(&mut master, &admission(None), WAIT).await;
      assert!(matches!(result, Err(WireError::TooLarge { .. })), "{result:?}");
    });
    let result = block_on(async {
      let (mut client, master) = pipe();
      let (_, mut raw) = master.into_parts();
      send_raw(&mut raw, &u32::MAX.to_le_bytes()).await;
      as_client(&mut client, None, Path::new(SOCK), WAIT).await
    });
    fatal(result, ClusterCode::Protocol, "not a sqlite3-cluster master");
  }

  #[test]
  fn a_truncated_frame_is_malformed_on_both_sides() {
    block_on(async {
      let (client, mut master) = pipe();
      let (_, mut raw) = client.into_parts();
      send_raw(&mut raw, &[10, 0, 0, 0, 1, 2, 3]).await;
      drop(raw);
      let result = as_master(&mut master, &admission(None), WAIT).await;
      assert!(matches!(result, Err(WireError::Malformed(_))), "{result:?}");
    });
    let result = block_on(async {
      let (mut client, master) = pipe();
      // The master's end stays open for reading (the client's hello goes through); only its
      // writing side ends, inside the frame.
      let (_reading, mut raw) = master.into_parts();
      send_raw(&mut raw, &[10, 0, 0, 0, 1, 2, 3]).await;
      raw.shutdown().await.unwrap();
      as_client(&mut client, None, Path::new(SOCK), WAIT).await
    });
    fatal(result, ClusterCode::Protocol, "closed inside a frame");
  }

  #[test]
  fn a_silent_peer_times_out_and_a_closed_one_is_no_master_yet() {
    let short = Duration::from_millis(50);
    block_on(async {
      let (_client, mut master) = pipe();
      let started = tokio::time::Instant::now();
      assert!(!as_master(&mut master, &admission(None), short).await.unwrap());
      assert!(started.elapsed() < WAIT);
      let (mut client, _master) = pipe();
      let result = as_client(&mut client, None, Path::new(SOCK), short).await;
      assert!(matches!(result, Err(Attempt::Retry)), "{result:?}");
      let (mut client, master) = pipe();
      drop(master);
      let result = as_client(&mut client, None, Path::new(SOCK), WAIT).await;
      assert!(matches!(result, Err(Attempt::Retry)), "{result:?}");
    });
  }
}
