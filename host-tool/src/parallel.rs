//! A minimal scoped worker pool: the two slow steps (reading/stripping files,
//! xz-compressing blocks) are independent per item.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        loop {
            let d = done.load(Ordering::Relaxed);
            tick(d as u64);
            if d == items.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
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
}
