//! A minimal scoped worker pool: the two slow steps (reading/stripping files,
//! xz-compressing blocks) are independent per item.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often `tick` is called at most (and at least, while work goes on).
const TICK: Duration = Duration::from_millis(50);

/// `f` over `items` on `jobs` threads; results in input order. `tick` is
/// called with the number of items done so far, from the calling thread.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
    tick: impl Fn(u64),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let jobs = jobs.clamp(1, items.len().max(1));
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (next, done, results, f) = (&next, &done, &results, &f);
        for _ in 0..jobs {
            let tx = tx.clone();
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
                done.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(());
            });
        }
        drop(tx);
        // Until every worker has ended, normally or by panicking (its sender
        // is dropped either way; the scope then re-raises the panic): no
        // polling delay after the last item.
        let mut last_tick = Instant::now();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(()) if last_tick.elapsed() < TICK => continue,
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            tick(done.load(Ordering::Relaxed) as u64);
            last_tick = Instant::now();
        }
        tick(done.load(Ordering::Relaxed) as u64);
    });
    results.into_inner().unwrap().into_iter().map(|r| r.expect("every item ran")).collect()
}

/// Worker count: what the user asked, else every CPU we may use.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_runs_everything() {
        let items: Vec<u32> = (0..1000).collect();
        for jobs in [1, 2, 7] {
            let out = super::parallel_map(&items, jobs, |x| x * 2, |_| {});
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        assert!(super::parallel_map(&[] as &[u32], 4, |x| *x, |_| {}).is_empty());
    }

    #[test]
    fn a_panicking_item_propagates_instead_of_hanging() {
        let items: Vec<u32> = (0..10).collect();
        let r = std::panic::catch_unwind(|| {
            super::parallel_map(&items, 2, |&x| if x == 7 { panic!("item 7") } else { x }, |_| {})
        });
        assert!(r.is_err());
    }
}
