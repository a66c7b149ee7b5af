//! `oom-score-adj` / `oom-score-adj-values`, as Redis's setOOMScoreAdj: while enabled the
//! process's /proc/self/oom_score_adj is the value of its class (master or replica) —
//! relative to the value found when Redis took control (`yes`, `relative`) or as it is
//! (`absolute`), clamped to [-1000, 1000]; turning it off writes that base back. The third
//! class (background child) has no process here: saves run on threads.

use parking_lot::Mutex;

use super::config::Config;

const PROC_FILE: &str = "/proc/self/oom_score_adj";

/// The value read when control was taken (Redis's oom_score_adj_base), while adjusted.
static BASE: Mutex<Option<i64>> = Mutex::new(None);

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("Unable to read oom_score_adj: {0}")]
    Read(std::io::Error),
    #[error("Unable to write oom_score_adj: {0}")]
    Write(std::io::Error),
}

/// Applies the configuration for the current role. Errors are logged by the caller.
pub fn apply(cfg: &Config) -> Result<(), OomError> {
    let mode = cfg.get("oom-score-adj");
    let replica = !cfg.get("replicaof").trim().is_empty();
    let mut base = BASE.lock();
    let value = if mode != "no" {
        let b = match *base {
            Some(b) => b,
            None => {
                let text = std::fs::read_to_string(PROC_FILE).map_err(OomError::Read)?;
                let b = text.trim().parse::<i64>().unwrap_or(0);
                *base = Some(b);
                b
            }
        };
        let values: Vec<i64> = cfg.get("oom-score-adj-values").split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let v = values.get(usize::from(replica)).copied().unwrap_or(0);
        let v = if mode == "absolute" { v } else { v + b };
        v.clamp(-1000, 1000)
    } else {
        match base.take() {
            Some(b) => b,
            None => return Ok(()),
        }
    };
    std::fs::write(PROC_FILE, format!("{value}\n")).map_err(OomError::Write)
}

/// [`apply`], logging a failure as Redis does; false when it failed.
pub fn apply_logged(cfg: &Config) -> bool {
    match apply(cfg) {
        Ok(()) => true,
        Err(e) => {
            super::log::warning(&e.to_string());
            false
        }
    }
}
