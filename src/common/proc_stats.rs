//! Figures about this process that INFO reports, for the server and the sentinel alike.

/// (user, system) CPU seconds used by this process, from /proc/self/stat (fields 14 and 15,
/// in clock ticks of 1/100 s on Linux); zeros where /proc is not readable.
pub fn cpu_times() -> (f64, f64) {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? / 100.0, f.get(12)?.parse::<f64>().ok()? / 100.0))
        })
        .unwrap_or((0.0, 0.0))
}

/// INFO's `# CPU` section body, as Redis prints it (children: none are forked here).
pub fn cpu_section() -> String {
    let (user, sys) = cpu_times();
    format!("used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{sys:.6}\r\nused_cpu_user_main_thread:{user:.6}\r\n")
}
