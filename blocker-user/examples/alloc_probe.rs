use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use blocker::filter::synth::{Mix, SyslogMix};
use blocker::filter::{Filter, FilterOptions};

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
static IN: AtomicBool = AtomicBool::new(false);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        if TRACE.load(Ordering::Relaxed) && !IN.swap(true, Ordering::Relaxed) {
            let bt = std::backtrace::Backtrace::force_capture();
            let s = format!("{bt}");
            let frames: Vec<&str> = s.lines().filter(|l| l.contains("blocker::")).take(4).collect();
            eprintln!("ALLOC {} {:?}", l.size(), frames);
            IN.store(false, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) { unsafe { System.dealloc(p, l) } }
}
#[global_allocator]
static A: Counting = Counting;

fn main() {
    let mix = match std::env::var("MIX").as_deref() { Ok("fail") => Mix::SshdFailures, Ok("other") => Mix::OtherDaemons, Ok("sshok") => Mix::SshdOther, _ => Mix::Realistic };
    let f = Filter::load("sshd", &FilterOptions::default()).unwrap();
    let lines: Vec<String> = SyslogMix::new(5, mix).take(40000).collect();
    let mut m = f.matcher();
    for l in &lines[..30000] { let _ = m.feed(l); }
    let c0 = COUNT.load(Ordering::Relaxed);
    TRACE.store(std::env::var_os("TRACE").is_some(), Ordering::Relaxed);
    for l in &lines[30000..30050] { let _ = m.feed(l); }
    TRACE.store(false, Ordering::Relaxed);
    for l in &lines[30050..] { let _ = m.feed(l); }
    println!("allocations per line: {:.2}", (COUNT.load(Ordering::Relaxed) - c0) as f64 / 10000.0);
}
