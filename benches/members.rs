//! One room's member set growing from 0 to a million members and emptying again, as a
//! celebrity's audience joins and leaves: the time of every single enter and quit (the
//! pause a request on the room's worker would see), and the heap the set holds per member
//! (counted by a wrapping allocator), with the memory scenario's member shape (a
//! 12-character userid, an 8-character CJK nickname, an 80-byte avatar URL).
//!
//! Run: `cargo bench --bench members [-- --members N]`.

use minilvb::room::Members;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// The allocator the server runs with (mimalloc), counting live heap bytes (the bench's
/// own allocations included, measured around them).
struct Counting;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { INNER.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { INNER.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn userid(i: usize) -> String {
    format!("u{i:011}")
}

fn headpic(id: &str, i: usize) -> String {
    format!("http://img.example.com/avatars/{id}/{:0>32}.png", i)
}

/// Percentiles and the largest pauses of one pass, with the room's size at each.
fn report(what: &str, times: &mut [(u64, usize)]) {
    let total: u64 = times.iter().map(|t| t.0).sum();
    let mut by_size: Vec<(u64, usize)> = times.to_vec();
    by_size.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
    let mut sorted: Vec<u64> = times.iter().map(|t| t.0).collect();
    sorted.sort_unstable();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    println!(
        "{what}: {} ops in {:.1} ms, mean {} ns, p50 {} ns, p99 {} ns, p99.9 {} ns, max {:.2} ms",
        times.len(),
        total as f64 / 1e6,
        total / times.len() as u64,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        sorted[sorted.len() - 1] as f64 / 1e6
    );
    let top: Vec<String> = by_size
        .iter()
        .take(5)
        .map(|(ns, size)| format!("{:.2} ms at {size}", *ns as f64 / 1e6))
        .collect();
    println!("  largest pauses: {}", top.join(", "));
}

fn main() {
    let mut n = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--members" {
            n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    // Inputs first, so that their memory is not counted as the set's.
    let ids: Vec<String> = (0..n).map(userid).collect();
    let pics: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| headpic(id, i))
        .collect();
    let nick = "观众昵称测试一二";
    let before = LIVE.load(Ordering::Relaxed);
    let mut m = Members::default();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let added = m.enter(&ids[i], nick, &pics[i]).is_some();
        times.push((t.elapsed().as_nanos() as u64, i));
        assert!(added);
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "{n} members in one room: {} bytes of heap, {:.1} bytes a member",
        held,
        held as f64 / n as f64
    );
    report("enter (0 → n)", &mut times);
    // Everyone leaves, in an order unrelated to joining (a fixed pseudo-random walk).
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut times = Vec::with_capacity(n);
    for (k, &i) in order.iter().enumerate() {
        let t = Instant::now();
        let gone = m.quit(&ids[i]);
        times.push((t.elapsed().as_nanos() as u64, n - k));
        assert!(gone);
    }
    report("quit (n → 0)", &mut times);
}
