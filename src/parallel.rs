//! An ordered parallel map: a slice split over scoped threads, results in input order. Used by
//! `verify-jwt --batch` and `resign --scan`.

/// Items per unit of work: small enough that threads finish together, large enough that
/// taking the next unit costs nothing.
const BLOCK: usize = 64;

/// Applies `f` to every item on up to `threads` threads, which take blocks of items as they
/// go (a thread slowed by the OS does not hold the others up). Should a thread panic (nothing
/// in jwkit panics on input), each item it did not return gets `on_panic()`, so results never
/// shift.
pub fn map_ordered<T, R, F, P>(items: &[T], threads: usize, f: F, on_panic: P) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    P: Fn() -> R + Sync,
{
    map_ordered_with(items, threads, || (), |_, t| f(t), on_panic)
}

/// `map_ordered` where each thread first builds its own state with `init` (used, for example,
/// for a thread-local copy of the verification keys).
pub fn map_ordered_with<T, S, R, I, F, P>(
    items: &[T],
    threads: usize,
    init: I,
    f: F,
    on_panic: P,
) -> Vec<R>
where
    T: Sync,
    R: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &T) -> R + Sync,
    P: Fn() -> R + Sync,
{
    let blocks = items.len().div_ceil(BLOCK);
    if threads <= 1 || blocks < 2 {
        let mut state = init();
        return items.iter().map(|t| f(&mut state, t)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, init, next) = (&f, &init, &next);
    let mut done: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(blocks))
            .map(|_| {
                scope.spawn(move || {
                    let mut state = init();
                    let mut mine = Vec::new();
                    loop {
                        let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if b >= blocks {
                            break mine;
                        }
                        let part = &items[b * BLOCK..((b + 1) * BLOCK).min(items.len())];
                        mine.push((b, part.iter().map(|t| f(&mut state, t)).collect::<Vec<R>>()));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    done.sort_unstable_by_key(|(b, _)| *b);
    let mut out = Vec::with_capacity(items.len());
    let mut done = done.into_iter().peekable();
    for b in 0..blocks {
        match done.next_if(|(i, _)| *i == b) {
            Some((_, results)) => out.extend(results),
            None => {
                let len = ((b + 1) * BLOCK).min(items.len()) - b * BLOCK;
                out.extend((0..len).map(|_| on_panic()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_is_kept_on_any_number_of_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 3, 7, 64] {
            let out = super::map_ordered(&items, threads, |x| x * 2, || 0);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }
}
