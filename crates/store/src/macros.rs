//! Write-transaction plumbing as macros rather than closures: a closure
//! taking `&DatabaseTransaction` and returning a future needs a
//! higher-ranked bound under which the compiler cannot prove the caller's
//! future `Send`; an inlined block has no such problem.

/// Runs `$body` (a block evaluating to `Result<T, TxError>`, with `$txn`
/// bound to the transaction) in a write transaction: commit on `Ok`,
/// rollback otherwise, and run it again (at most `MAX_ATTEMPTS` times) on
/// a transient conflict. Evaluates to `store::Result<T>`. The block may
/// run more than once, so it must not move out of captured variables.
macro_rules! write_txn {
    ($inner:expr, $txn:ident => $body:block) => {{
        let inner: &$crate::db::Inner = &$inner;
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let guard = inner.lock_writes().await;
            let txn = inner.begin_write().await?;
            let $txn = &txn;
            let result: ::std::result::Result<_, $crate::db::TxError> = async { $body }.await;
            let step = inner.finish(txn, result, attempts).await;
            drop(guard);
            if let ::std::option::Option::Some(done) = step {
                break done;
            }
        }
    }};
}

/// Runs `$body` (a block evaluating to `store::Result<T>`, with `$conn`
/// bound to the connection) as autocommitted statements, serialized with
/// the write transactions on SQLite.
macro_rules! write_one {
    ($inner:expr, $conn:ident => $body:block) => {{
        let inner: &$crate::db::Inner = &$inner;
        let guard = inner.lock_writes().await;
        let $conn = &inner.conn;
        let result: $crate::Result<_> = async { $body }.await;
        drop(guard);
        result
    }};
}
