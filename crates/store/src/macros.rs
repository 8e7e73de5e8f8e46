//! Write-transaction plumbing as a macro: it moves the values a body needs
//! into the job (which outlives the caller's borrow when it runs on the
//! SQLite writer thread) and lends them back to the body by reference, so
//! a body reads like straight-line code over borrowed values.

/// Runs `$body` (a block evaluating to `Result<T, TxError>`, with `$txn`
/// bound to the transaction) as one write transaction, and evaluates to
/// `store::Result<T>` once it has committed. Inside the body each name of
/// the first `[...]` is a reference to an owned copy (`ToOwned` of its target: a
/// `&TenantStore` becomes a `TenantStore`, a `&str` or `String` a `String`)
/// and each name of the second `[...]` a reference to that owned variable, moved
/// in; `Copy` values are copied in. The block may run more than once (a transient
/// conflict retries it), so it must have no effects outside the
/// transaction.
macro_rules! write_txn {
    ($inner:expr, [$($cap:ident),* $(,)?], [$($own:ident),* $(,)?], $txn:ident => $body:block) => {
        write_txn!(@via write, $inner, [$($cap),*], [$($own),*], $txn => $body)
    };
    (@via $method:ident, $inner:expr, [$($cap:ident),*], [$($own:ident),*], $txn:ident => $body:block) => {{
        let inner: &$crate::db::Inner = &$inner;
        $( let $cap = ::std::borrow::ToOwned::to_owned(&*$cap); )*
        inner
            .$method(
                ($($cap,)* $($own,)*),
                move |($($cap,)* $($own,)*), $txn| -> $crate::writer::TxFuture<'_, _> {
                    ::std::boxed::Box::pin(async move { $body })
                },
            )
            .await
    }};
}
