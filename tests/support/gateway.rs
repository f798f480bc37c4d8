//! `TestGateway`: the gateway under test, started in process.
//!
//! To be written once `src/` compiles. Shape (style guide 7.10):
//! `TestGateway::builder().api(..).oauth_client(..).start().await` binds
//! every listener on `127.0.0.1:0`, points the gateway at a
//! [`TestRedis`](super::TestRedis) (its `url()`) with a per-test key prefix,
//! and returns the bound addresses and a client. Upstreams come from
//! [`Upstream`](super::Upstream).
