//! End-to-end tests of the `scimgate` binary: real processes on temporary
//! data directories, real HTTP on 127.0.0.1. One test binary (modules below)
//! so the suite links once.

mod builder;
mod config;
mod operator;
mod postgres;
mod serve;
mod support;
