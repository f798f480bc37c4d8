//! Clients that are slow or greedy on purpose cannot hold the node: request
//! headers and the bodies tollgate reads itself must arrive within the read
//! timeout, a declared body over the limit is refused before it is sent,
//! and the data plane serves a bounded number of connections without
//! starving the control plane.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::fixtures::{Fixture, LISTEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The fixture with a one-second read timeout and room for `connections`.
async fn start(connections: usize) -> Fixture {
    Fixture::start_with(|builder, _| {
        builder.configure(move |config| {
            config.proxy.read_timeout = READ_TIMEOUT;
            config.proxy.max_connections = connections;
        })
    })
    .await
}

/// Everything the server sends until it closes the connection, or what
/// came within `wait` when it keeps it open.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let closed = timeout(wait, stream.read_to_end(&mut received))
        .await
        .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test]
async fn unfinished_headers_are_cut_off_after_the_read_timeout() {
    let fx = start(100).await;
    let mut stream = connect(fx.gw.data).await;
    stream
        .write_all(b"GET /APIID/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");

    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection is still open after 5 s");
    assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(100));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let fx = start(100).await;
    let mut stream = connect(fx.gw.control).await;
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");

    let (received, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(closed, "an idle connection is still open after 5 s");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let fx = Fixture::start_with(|builder, _| {
        builder.configure(|config| config.proxy.max_body_bytes = 1024)
    })
    .await;
    let mut stream = connect(fx.gw.data).await;
    let head = format!(
        "POST {LISTEN}oauth/token HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");

    let mut answer = vec![0; 4096];
    let read = timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer without sending the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408() {
    let fx = start(100).await;
    let mut stream = connect(fx.gw.data).await;
    let head = format!(
        "POST {LISTEN}oauth/token HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\ngrant_type="
    );
    stream.write_all(head.as_bytes()).await.expect("write");

    let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("no-store"), "{received}");
}

#[tokio::test]
async fn a_full_data_plane_queues_new_connections_and_spares_the_control_plane() {
    let fx = start(2).await;
    // Two connections take both slots; each has sent half a request.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(fx.gw.data).await;
        stream
            .write_all(b"GET /APIID/x HTTP/1.1\r\n")
            .await
            .expect("write");
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A third is accepted by the kernel but not served yet.
    let mut waiting = connect(fx.gw.data).await;
    waiting
        .write_all(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 64];
    let early = timeout(Duration::from_millis(300), waiting.read(&mut first)).await;
    assert!(early.is_err(), "served although both slots were taken");

    let hello = fx.gw.http.get(fx.gw.control_url("/hello")).send().await;
    assert_eq!(hello.expect("the control plane answers").status(), 200);

    // Once a holder goes away, the waiting connection is served.
    drop(holders.pop());
    let (received, _) = read_until_closed(&mut waiting, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 404"), "{received}");
}
