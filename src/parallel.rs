//! An ordered parallel map: a slice split over scoped threads, results in input order. Used by
//! `verify-jwt --batch` and `resign --scan`.

/// Applies `f` to every item on up to `threads` threads. Should a thread panic (nothing in
/// jwkit panics on input), each item of its share gets `on_panic()`, so results never shift.
pub fn map_ordered<T, R, F, P>(items: &[T], threads: usize, f: F, on_panic: P) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    P: Fn() -> R + Sync,
{
    if threads <= 1 || items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| {
                (
                    part.len(),
                    scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, h)| {
                h.join()
                    .unwrap_or_else(|_| (0..len).map(|_| on_panic()).collect())
            })
            .collect()
    })
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
