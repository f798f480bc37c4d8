//! tollgate: an API gateway node with a built-in OAuth 2.0 authorization
//! server whose state lives in Redis.

pub mod admin;
pub mod analytics;
pub mod api;
pub mod app;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod policy;
pub mod proxy;
pub mod session;
pub mod storage;
pub mod telemetry;
pub mod webhooks;
