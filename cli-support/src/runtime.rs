//! The async runtime a binary runs its work on: tokio's multi-threaded scheduler with two
//! workers (the machines this project targets, and its CI, have two cores), timers and IO
//! enabled. A binary calls [`block_on`] once from `main`.

use std::future::Future;

/// Runs `task` to completion on a two-worker runtime. If the runtime cannot start, says so on
/// stderr and exits 1: there is nothing else a binary could do.
pub fn block_on<T>(task: impl Future<Output = T>) -> T {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
