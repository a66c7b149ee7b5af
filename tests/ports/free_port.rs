// Included (`include!`) by every test harness that starts servers on loopback ports.

/// A port for a test server to listen on: bindable now, never handed out twice in this
/// test process (tests run in parallel threads), and below the kernel's ephemeral range
/// (32768+ by default), so no outgoing connection of a parallel test can be holding it
/// when the server binds a moment later. `bind(0)` would pick from that very range.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    use std::time::{SystemTime, UNIX_EPOCH};
    static GIVEN: OnceLock<Mutex<(HashSet<u16>, u64)>> = OnceLock::new();
    let state = GIVEN.get_or_init(|| {
        // seed differs per process so two test binaries do not walk the same sequence
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
        Mutex::new((HashSet::new(), nanos ^ (u64::from(std::process::id()) << 20) | 1))
    });
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    let (given, seed) = &mut *guard;
    for _ in 0..100_000 {
        // xorshift64: cheap, good enough to spread ports
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let port = 20_000 + (*seed % 12_000) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in 20000..32000");
}
